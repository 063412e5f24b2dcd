"""Secrets masked out of the text that hf_txray shows: the one home of the rule "secrets never reach logs, cards or
files" for text that names what a user typed.

A user may put a secret inside a name: a URL with its user and password (``https://user:hf_xxx@host/data.txt``),
a signed or token-carrying query string (``...?token=hf_xxx``), or a Hub token itself, pasted where a model or a path
was meant. hf_txray reads no URL, so such a name is refused, and the refusal repeats the name: :func:`redact` masks
the secret there (:class:`~hf_txray.errors.TXRayError` applies it to every message).
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ or scheme://token@ (also after pathlib folded "//" into "/": "https:/user:pw@host")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*:/{1,2})[^/\s@'\"]+@")
# ?token=..., &access_token=..., #api_key=..., ;sig=...: a query or fragment parameter (masked when its name says
# secret: is_secret_name)
_PARAM = re.compile(r"([?&#;])([\w.-]+)=([^&#;:,\s'\"]+)")
# "token": "...", 'hub_token': '...' (a JSON object or a Python dict repeated in a message: model_kwargs's text; masked
# when the key says secret and the value looks like one: _item_gives_a_secret), a value without a space
_ITEM = re.compile(r"""(["'])([\w.-]+)\1(\s*:\s*)(["'])((?:(?!\4)\S)+)\4""")
# the characters of a key or token as services issue them (letters, digits, base64's and URLs' signs): a value with
# others ('<|eot_id|>', '[MASK]', '</s>') is a tokenizer's special token
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_.~+/=-]+")
# an HTTP Authorization header, as a header line, a dict item or a query parameter (its scheme masked with it):
# "Authorization: Bearer hf_xxx", {'Authorization': 'Basic dXNlcjpwdw=='}
_AUTH_HEADER = re.compile(
    r"""(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|digest|token|negotiate)\s+)?"""
    r"""[^\s'",;&]+""", re.IGNORECASE)
# NAME=value and name: value outside a query string, of a name of two or more words named as a secret (is_secret_name),
# or of one word that says secret wherever it stands ("password=..."):
# an environment variable typed after a command or echoed in a log line ("HF_TOKEN=hf_xxx", "AWS_SECRET_ACCESS_KEY=..."),
# an HTTP header ("X-Api-Key: ..."), a YAML or .env line ("hf_token: ..."). One word alone ("token=...", "key: ...") is
# left to the query and item rules: the messages say "pass token=..." and name a vocabulary's tokens
_ASSIGNMENT = re.compile(r"""(?<![\w.])(-{0,2}[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*)(\s*[=:]\s*)(["']?)"""
                         r"""([^\s'",;&]+)""")
# a value that is a Hub token by its look, short ones included ("token: hf_abcdefgh12", "key=hf_short1"): what a name
# of one word ("token", "key") gives is a secret then (_gives_a_secret)
_HF_TOKEN_VALUE = re.compile(r"hf_[A-Za-z0-9]{6,}")
# the words of a parameter or key name: snake_case, kebab-case and camelCase ("X-Amz-Security-Token", "AWSAccessKeyId")
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# a word that says secret wherever it stands in a name ("password_hash", "client_secret", "X-Amz-Credential")
_SECRET_WORDS = frozenset({"secret", "password", "passwd", "passphrase", "pwd", "credential", "credentials"})
# a word that says secret as a name's last word ("hf_token", "access_token", "api_key", "sig", "X-Amz-Signature",
# "auth"), not elsewhere: "pad_token_id", "max_tokens_per_batch" and "key_column" name no secret ("tokenizer" and
# "keyword" are words of their own)
_SECRET_LAST_WORDS = frozenset({"token", "key", "sig", "signature", "auth", "authorization", "pass", "apikey",
                                "apitoken", "accesskey", "accesstoken", "authtoken", "secretkey", "privatekey"})
# a tokenizer's special tokens ("bos_token": "<|endoftext|>", transformers' SPECIAL_TOKENS_ATTRIBUTES) and a
# processor's ("image_token"): texts of a vocabulary, in every message about a tokenizer
_SPECIAL_TOKEN_WORDS = frozenset({"bos", "eos", "unk", "sep", "pad", "cls", "mask", "image", "video", "audio", "boi",
                                  "eoi"})
# a word before "key" that names an ordinary key, of a table, a cache or a sort ("sort_key", "primary_key",
# "cache_key", hf_txray's own "run_key"), not a credential ("api_key", "secret_key", "access_key", "hf_key", and any
# other word: a name not listed here stays masked). Not "hash": a keyed hash's key (HASH_KEY=... for an HMAC) is a
# secret as often as a table's hash key is none
_ORDINARY_KEY_WORDS = frozenset({"sort", "primary", "foreign", "unique", "composite", "natural", "surrogate", "cache",
                                 "run", "dict", "map", "lookup", "group", "partition", "shard", "index", "join",
                                 "row", "column", "record", "order", "cluster", "dedup", "merge"})
# a name's last word that says it holds a number about something, not the thing: "password_length", "token_count",
# "max_secret_len" name a number, never a secret
_QUANTITY_WORDS = frozenset({"length", "len", "count", "size", "min", "max", "limit", "chars", "characters"})
# a Hugging Face token as the Hub issues them ("hf_" and 34 letters): long enough to leave names like hf_txray_cache;
# also where a word is glued to it ("hf_<34>_old", "my_hf_<34>": an underscore is a word's letter to \b)
_HF_TOKEN = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
# a stand-in for a masked secret, which every rule of redact masks again (a Hub token's length: also "hf_" + it)
_MASKED_PROBE = "Zq9" * 12
# a Hugging Face token cut short, 8 to 29 letters and digits after "hf_" (see redact_typed)
_SHORT_HF_TOKEN = re.compile(r"\bhf_([A-Za-z0-9]{8,29})\b")


def redact(text: str) -> str:
    """`text` with the secrets it may carry masked: a URL's user and password, an ``Authorization`` header's value,
    the value of a query parameter named as a secret (:func:`is_secret_name`: ``token=``, ``access_token=``,
    ``api_key=``, ``sig=``..., not ``tokenizer=``), the value given to a name of several words named as a secret
    elsewhere (``HF_TOKEN=...``, ``X-Api-Key: ...``, ``hf_token: ...``), the string value of a JSON object's or a Python dict's key named
    as a secret (``"token": "..."``, ``'hub_token': '...'``, not ``'bos_token': '<|endoftext|>'``), and a Hugging
    Face token (``hf_`` and 30 or more letters and digits).

    Example:

    ```python
    >>> redact("The dataset path 'https://me:hf_xyz@host/a.txt?token=hf_xyz&x=1' does not exist")
    "The dataset path 'https://***@host/a.txt?token=***&x=1' does not exist"
    ```
    """
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    text = _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
    text = _PARAM.sub(lambda m: f"{m[1]}{m[2]}={MASK}" if is_secret_name(m[2]) else m[0], text)
    text = _mask_assignments(text)
    text = _ITEM.sub(lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{MASK}{m[4]}" if _item_gives_a_secret(m[2], m[5])
                     else m[0], text)
    return _HF_TOKEN.sub(f"hf_{MASK}", text)


def _mask_assignments(text: str) -> str:
    """`text` with the values of its ``NAME=value`` and ``name: value`` masked where the name gives a secret
    (:func:`_gives_a_secret`). A name that gives none is passed alone, not with its value: that "value" may be the
    next name ("unrecognized arguments: HF_TOKEN=...", "headers: X-Api-Key: ...")."""
    pieces, position = [], 0
    while (found := _ASSIGNMENT.search(text, position)) is not None:
        if _gives_a_secret(found[1], found[2], found[4]):
            pieces.append(f"{text[position:found.start(3)]}{found[3]}{MASK}")
            position = found.end()
        else:
            pieces.append(text[position:found.end(1)])
            position = found.end(1)
    return "".join(pieces) + text[position:]


def _gives_a_secret(name: str, sign: str, value: str) -> bool:
    """Whether `name` followed by `sign` (``=`` or ``:``, with spaces) and `value` gives a secret in a text: a name of
    several words named as a secret (:func:`is_secret_name`: ``HF_TOKEN=``, ``X-Api-Key:``), ``password=`` (one of
    :data:`_SECRET_WORDS` alone, with ``=``: "a secret: ..." is prose), or a name of one word named as a secret given
    a Hub token, short ones included (``token: hf_abcdefgh12``); not ``token`` or ``key`` alone given anything else,
    which a message writes of an argument (``pass token=...``) or of a vocabulary's tokens (``token: the``)."""
    if len(_NAME_WORDS.findall(name)) > 1:
        return is_secret_name(name)
    if is_secret_name(name) and _HF_TOKEN_VALUE.fullmatch(value):
        return True
    return "=" in sign and name.lower() in _SECRET_WORDS


def _item_gives_a_secret(name: str, value: str) -> bool:
    """Whether the item ``"name": "value"`` of a JSON object or a Python dict in a text holds a secret: `name` is a
    secret's (:func:`is_secret_name`) and `value` is 12 characters or more, or shorter in a key's characters
    (:data:`_KEY_CHARACTERS`) given to a name of several words not ending in ``token`` (``{'api_key': 'zz'}``), or to
    a name of one word or ending in ``token`` when it mixes letters and digits (``{"token": "abc123"}``,
    ``{'hf_token': 'x9'}``). Not a feature's kinds or a vocabulary's tokens (``{'token': 'text'}``, ``{"key":
    "the"}``), nor a special token (``{'eot_token': '<|eot_id|>'}``, a word-level vocabulary's ``{'start_token':
    'BOS'}``)."""
    if not is_secret_name(name):
        return False
    if len(value) >= 12:
        return True
    if not _KEY_CHARACTERS.fullmatch(value):
        return False
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    if len(words) > 1 and words[-1] != "token":
        return True
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def redact_typed(text: str) -> str:
    """:func:`redact`, and a Hugging Face token cut short masked too: for a text that repeats what the user typed
    word for word (argparse's "unrecognized arguments: ...", "invalid choice: ...": a token pasted without its end is
    still a secret).

    A short word ``hf_`` + 8 to 29 letters and digits is taken for a token when it mixes capitals and small letters:
    a Hub token's characters are random letters of both cases (8 random ones are all of one case once in 128),
    while names a user types are small letters, digits and underscores (``hf_transformers``, ``hf_gpt2medium``,
    ``hf_run2024``; ``hf_internal_testing`` and ``hf_txray_cache`` are not even one word of letters and digits).
    Digits do not count: they are no token's, and a folder ``hf_run2024`` was shown as ``hf_***``.

    Example:

    ```python
    >>> redact_typed("unrecognized arguments: hf_QMbWEzRbZPGy hf_transformers")
    'unrecognized arguments: hf_*** hf_transformers'
    ```
    """
    def mask(match: re.Match) -> str:
        body = match[1]
        mixed = any(c.isupper() for c in body) and any(c.islower() for c in body)
        return f"hf_{MASK}" if mixed else match[0]

    return _SHORT_HF_TOKEN.sub(mask, redact(text))


def is_secret_name(name: str) -> bool:
    """Whether a parameter or key called `name` holds a secret: one of its words (snake_case, kebab-case, camelCase)
    is ``secret``, ``password``, ``pwd``, ``credential``..., or its last word is ``token``, ``key``, ``sig``,
    ``signature``, ``auth``... (``token``, ``hf_token``, ``access_token``, ``api_key``, ``X-Amz-Signature``), or it
    ends in ``key`` and ``id`` (``AWSAccessKeyId``). Not a name that merely contains such a word (``tokenizer``,
    ``pad_token_id``, ``max_tokens_per_batch``, ``keyword``, ``author``), a tokenizer's special token
    (``bos_token``, ``pad_token``, ``image_token``), an ordinary key (``sort_key``, ``primary_key``, ``cache_key``,
    ``run_key``: :data:`_ORDINARY_KEY_WORDS`) nor a number about a secret (``password_length``, ``token_count``).

    Example:

    ```python
    >>> is_secret_name("hf_token"), is_secret_name("X-Amz-Credential"), is_secret_name("tokenizer")
    (True, True, False)
    ```
    """
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    if not words or (len(words) > 1 and words[-1] in _QUANTITY_WORDS):
        return False
    if _SECRET_WORDS.intersection(words):
        return True
    if words[-2:] == ["key", "id"]:
        words = words[:-1]  # "AWSAccessKeyId": the id of an access key, as secret as the key
    if words[-1] == "key" and len(words) > 1 and words[-2] in _ORDINARY_KEY_WORDS:
        return False
    special_token = len(words) == 2 and words[0] in _SPECIAL_TOKEN_WORDS and words[1] == "token"
    return words[-1] in _SECRET_LAST_WORDS and not special_token


def is_secret_flag(flag: str) -> bool:
    """Whether a command-line option called `flag` takes a secret: its name is a secret's (:func:`is_secret_name`:
    ``--token``, ``--hf-token``, ``--api-key``) or one of its words is, or ends in, a secret's word, misspelt or not
    (``--tokn``, ``--hf-tokne``, ``--pasword``, ``--hf-token-value``, ``--githubtoken``, ``--token2``: what a user
    typed for ``--token`` is repeated in "unrecognized arguments", and an option argparse does not know says nothing
    of what its value holds). Not ``--tokenizer-name``, ``--max-tokens`` (a plural names no secret), ``--sort-key``,
    ``--password-length`` (a number: :data:`_QUANTITY_WORDS`).

    Example:

    ```python
    >>> is_secret_flag("--tokn"), is_secret_flag("--api-key"), is_secret_flag("--tokenizer-name")
    (True, True, False)
    ```
    """
    if is_secret_name(flag):
        return True
    words = [word.lower() for word in _NAME_WORDS.findall(flag)]
    if not words or words[-1] in _QUANTITY_WORDS:
        return False
    return any(_is_secret_word(typed, word) for typed in words for word in _MISSPELT_SECRET_WORDS)


def _is_secret_word(typed: str, word: str) -> bool:
    """Whether `typed`, a word of an option's name, is the secret's `word`: as it is, glued after another word
    (``githubtoken``) or one letter off (``tokn``, ``tokne``), not its plural (``tokens``) nor a longer word of its
    own (``tokenizer``)."""
    import difflib  # here: this module loads with `import hf_txray` (logging)

    if typed == word + "s":
        return False
    return typed.endswith(word) or difflib.SequenceMatcher(None, typed, word).ratio() >= 0.75


# the secret words a misspelt option is compared with (is_secret_flag): long enough that one letter off is still
# close ("key" and "sig" are not: "kye" or "sag" may be anything)
_MISSPELT_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential")


def redact_record(value: Any, key: str | None = None) -> Any:
    """A JSON record (``model_kwargs`` as a profile records it) with its secrets masked: a string value of a key
    named as a secret (:func:`is_secret_name`: ``{"headers": {"Authorization": "Bearer ..."}}``) as :data:`MASK`,
    every other string through :func:`redact` (``{"cache_dir": "/x?token=..."}``); other values as they are.

    Example:

    ```python
    >>> redact_record({"cache_dir": "/x?token=hf_abc", "headers": {"api_key": "k"}, "attn_implementation": "sdpa"})
    {'cache_dir': '/x?token=***', 'headers': {'api_key': '***'}, 'attn_implementation': 'sdpa'}
    ```
    """
    if isinstance(value, Mapping):
        return {name: redact_record(item, _record_key(name)) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_record(item) for item in value]
    if not isinstance(value, str):
        return value
    return MASK if key is not None and is_secret_name(key) else redact(value)


def redacted_repr(instance: Any) -> str:
    """A dataclass's repr as ``@dataclass`` writes it (``Name(field=value, ...)``, the fields shown in a repr) with
    the secrets its fields hold masked: a string field named as a secret (:func:`is_secret_name`: ``token``) as
    :data:`MASK`, a mapping through :func:`redact_record` (``model_kwargs={"token": ...}``), every other string
    through :func:`redact`; other values as they are (``token=True`` says to use the saved login).

    Example:

    ```python
    >>> @dataclasses.dataclass
    ... class Login:
    ...     user: str
    ...     token: str
    >>> redacted_repr(Login("me", "hf_xxx"))
    "Login(user='me', token='***')"
    ```
    """
    import dataclasses  # here: this module loads with `import hf_txray` (logging), and dataclasses brings inspect

    def shown(name: str, value: Any) -> Any:
        if isinstance(value, str):
            return MASK if is_secret_name(name) else redact(value)
        return redact_record(value) if isinstance(value, Mapping) else value

    fields = (f"{f.name}={shown(f.name, getattr(instance, f.name))!r}" for f in dataclasses.fields(instance) if f.repr)
    return f"{type(instance).__qualname__}({', '.join(fields)})"


def _record_key(name: Any) -> str | None:
    """`name`, a key of a record, as :func:`redact_record` reads it for a secret's name: ``None`` for one that is no
    string, or that holds a dot: a module's path or a pattern (``device_map={"bert.encoder.layer.0.attention.self.key":
    "cpu"}``, ``key_mapping={"^encoder.(.*).key": ...}``), never a parameter's or a header's name."""
    return name if isinstance(name, str) and "." not in name else None


def holds_masked(value: Any, key: str | None = None) -> bool:
    """Whether a record made by :func:`redact_record` holds a masked secret (its original is not recorded): a value
    :data:`MASK` under a key named as a secret, or a string where :func:`redact` put the mask (``/x?token=***``,
    ``https://***@host``, ``hf_***``). A value that merely holds ``***`` (``/data/***/cache``) is as it was given.

    Example:

    ```python
    >>> holds_masked({"cache_dir": "/x?token=***"}), holds_masked({"api_key": "***"}), holds_masked("/data/***/x")
    (True, True, False)
    ```
    """
    if isinstance(value, Mapping):
        return any(holds_masked(item, _record_key(name)) for name, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_masked(item) for item in value)
    if not isinstance(value, str) or MASK not in value:
        return False
    if value == MASK and key is not None and is_secret_name(key):
        return True
    # where redact put the mask, a secret in its place is masked again; elsewhere the text stays as it is
    unmasked = value.replace(MASK, _MASKED_PROBE)
    return redact(unmasked) != unmasked


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
