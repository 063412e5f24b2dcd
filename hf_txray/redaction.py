"""Secrets masked out of the text that hf_txray shows: the one home of the rule "secrets never reach logs, cards or
files" for text that names what a user typed.

A user may put a secret inside a name: a URL with its user and password (``https://user:hf_xxx@host/data.txt``),
a signed or token-carrying query string (``...?token=hf_xxx``), or a Hub token itself, pasted where a model or a path
was meant. hf_txray reads no URL, so such a name is refused, and the refusal repeats the name: :func:`redact` masks
the secret there (:class:`~hf_txray.errors.TXRayError` applies it to every message).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ or scheme://token@ (also after pathlib folded "//" into "/": "https:/user:pw@host")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*:/{1,2})[^/\s@'\"]+@")
# ?token=..., &access_token=..., #api_key=..., ;sig=... (a query or fragment parameter whose name says secret)
_SECRET_PARAM = re.compile(
    r"([?&#;][\w.-]*(?:token|key|secret|passw|pwd|sig|auth|credential)[\w.-]*=)[^&#;:,\s'\"]+", re.IGNORECASE)
# "token": "...", 'hub_token': '...' (a JSON object or a Python dict repeated in a message: model_kwargs's text), a
# value of 12 or more characters without a space: a feature's {'token': 'text'} is no secret
_SECRET_ITEM = re.compile(
    r"""(["'](?:[\w.-]*[_.-])?(?:token|key|secret|password|passwd|pwd|credentials?|auth)["']\s*:\s*)(["'])"""
    r"""(?:(?!\2)\S){12,}\2""", re.IGNORECASE)
# a Hugging Face token as the Hub issues them ("hf_" and 34 letters): long enough to leave names like hf_txray_cache
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")


def redact(text: str) -> str:
    """`text` with the secrets it may carry masked: a URL's user and password, the value of a secret-like query
    parameter (``token=``, ``access_token=``, ``api_key=``, ``sig=``...), the string value of a secret-like key of a
    JSON object or Python dict (``"token": "..."``, ``'hub_token': '...'``), and a Hugging Face token (``hf_`` and 30
    or more letters and digits).

    Example:

    ```python
    >>> redact("The dataset path 'https://me:hf_xyz@host/a.txt?token=hf_xyz&x=1' does not exist")
    "The dataset path 'https://***@host/a.txt?token=***&x=1' does not exist"
    ```
    """
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    text = _SECRET_PARAM.sub(rf"\g<1>{MASK}", text)
    text = _SECRET_ITEM.sub(rf"\g<1>\g<2>{MASK}\g<2>", text)
    return _HF_TOKEN.sub(f"hf_{MASK}", text)


def scrub(text: str, token: str | None) -> str:
    """`text` with every occurrence of `token` masked (`token` not a string, e.g. `True`: nothing to mask)."""
    return text.replace(token, f"hf_{MASK}") if isinstance(token, str) and token else text


def safe_cause(err: BaseException, token: Any = None) -> BaseException | None:
    """`err` to chain from, or ``None`` when a traceback of it would show a secret: `token`, or one that :func:`redact`
    masks (a URL's password, a ``?token=`` value), in `err` or in an error it was raised from or during (a traceback
    prints each of them verbatim: fsspec's ``FileNotFoundError('https://user:hf_xxx@host/a.txt')`` under a stream's
    error)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = repr(current) + "".join(str(getattr(current, name, None) or "") for name in ("filename", "filename2"))
        if (isinstance(token, str) and token and token in text) or redact(text) != text:
            return None
        # the next error a traceback prints: the one raised from, else (unless suppressed) the one raised during
        current = current.__cause__ if current.__cause__ is not None else \
            None if current.__suppress_context__ else current.__context__
    return err


def without_userinfo(url: str) -> str:
    """`url` without its ``user:password@`` (``HF_ENDPOINT=https://me:pw@hub.example.com``): the address to write
    where others read it (a card's links), which the Hub's pages answer without the password."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def shown_url(url: Any) -> str:
    """`url` as hf_txray prints or logs it (``pushed to ...``): without its ``user:password@``
    (:func:`without_userinfo`: a commit URL under ``HF_ENDPOINT=https://me:pw@hub.example.com`` carries them) and
    with any other secret :func:`redact` finds masked.

    Example:

    ```python
    >>> shown_url("https://me:pw@hub.example.com/user/repo/commit/abc")
    'https://hub.example.com/user/repo/commit/abc'
    ```
    """
    return redact(without_userinfo(str(url)))
