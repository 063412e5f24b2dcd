"""Feature types as registered records: the built-in token, word, pos, dep and ner, and user features.

"Is this feature text-like or tag-like?", "which feature do figures show first?", "which names are valid?" are
answered here, from :class:`FeatureType` records, instead of by literal name tests where results are shown.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
import sys
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from ..counts import check_switch
from ..errors import ConfigurationError, ProfileFormatError
from ..names import control_characters, one_line_name

USER_FEATURE_ORDER = 10  # user features read after the spaCy tags and before the text features


@dataclass(frozen=True)
class UserFeature:
    """A user-defined feature: `fn(text)` returns ``(start, end, label)`` character spans.

    A token takes the label of the span that contains its first visible character (a leading space in its offsets,
    as SentencePiece's ``"▁was"``, does not count; a piece of whitespace alone, as a lone ``"▁"``, has none); tokens
    outside every span carry no value for this feature (they are still credited for the other features). Spans may
    come in any order; they must not overlap, must lie within the text and have labels that are strings or numbers
    (``str(label)`` is the value), not missing values such as None or NaN (else a ``ConfigurationError`` at the first
    such text).

    Raises:
        `ConfigurationError`: at construction, a name or function :func:`check_user_feature` refuses
            (``UserFeature(3, None)`` was built and refused only by ``analyze``, after any work before it).
    """

    name: str
    fn: Callable[[str], Iterable[tuple[int, int, str]]]

    def __post_init__(self) -> None:
        check_user_feature(self.name, self.fn)


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """What a user feature's function computes, as far as can be read without running it: the sha256 of its
    bytecode, constants and names (nested functions included), and of the values it is bound to that are fixed when
    it is made: its closure's cells, its default arguments, a ``functools.partial``'s function and arguments (and
    the function a ``functools.lru_cache`` caches). Those
    values count when they are immutable (numbers, strings, tuples and frozensets of them, functions, compiled
    patterns); a mutable one (a dict, a list: a memo or a counter changes as the function runs) counts by its type.

    Another function under the same feature name gets another fingerprint, and so does one made by a factory with
    another argument (``make_labeller(threshold=10)`` and ``make_labeller(threshold=1000)`` shared one, and a
    resume mixed their labels); a change in something it only reads at run time (a global table, an instance's
    attributes) does not."""
    digest = hashlib.sha256()
    _add_callable(digest, fn, depth=0)
    return digest.hexdigest()[:16]


def recorded_fingerprint(fn: Callable[..., Any]) -> str:
    """What a profile records of a user feature's function (``meta.config["user_features"]``): its
    :func:`code_fingerprint` behind the Python version that read it (``"py3.11:5c49..."``), since bytecode differs
    between Python versions: two records of one version that differ are two labellings under one name
    (:func:`~hf_txray.profile.user_feature_differences`), two of other versions cannot be told apart."""
    return f"py{sys.version_info[0]}.{sys.version_info[1]}{_VERSION_MARK}{code_fingerprint(fn)}"


_VERSION_MARK = ":"  # between the Python version and the code fingerprint in a recorded_fingerprint


def fingerprints_differ(a: str, b: str) -> bool:
    """Whether two :func:`recorded_fingerprint` records name two different functions: they differ and were read by
    one Python version (bytecode differs between versions, so records of two versions cannot be told apart)."""
    return a != b and a.split(_VERSION_MARK, 1)[0] == b.split(_VERSION_MARK, 1)[0]


_FINGERPRINT_DEPTH = 8  # functions bound to functions (a partial of a closure...) followed this deep


def _add_callable(digest: Any, fn: Any, depth: int) -> None:
    if isinstance(fn, functools.partial):
        digest.update(b"partial\0")
        _add_callable(digest, fn.func, depth + 1)
        _add_value(digest, fn.args, depth + 1)
        _add_value(digest, tuple(sorted(fn.keywords.items())), depth + 1)
        return
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    if code is None:  # a builtin: its type is all that is stable across processes
        digest.update(f"{type(fn).__module__}.{type(fn).__qualname__}".encode())
        wrapped = getattr(fn, "__wrapped__", None)  # functools.lru_cache / cache: the function it caches
        if callable(wrapped) and depth < _FINGERPRINT_DEPTH:
            _add_callable(digest, wrapped, depth + 1)
        return
    codes = [code]
    while codes:
        code = codes.pop()
        digest.update(code.co_code + repr(code.co_names).encode())
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                codes.append(const)
            elif isinstance(const, (frozenset, tuple)):  # ``w in {"the", "a"}``: a frozenset's repr follows the
                _add_value(digest, const, depth + 1)      # strings' hashes, which PYTHONHASHSEED draws per process
            else:
                digest.update(repr(const).encode())
    function = getattr(fn, "__func__", fn)  # a bound method: its function's bindings (not the instance's state)
    if depth < _FINGERPRINT_DEPTH:
        for cell in getattr(function, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a name bound later in the enclosing function)
                value = None
            _add_value(digest, value, depth + 1)
        _add_value(digest, getattr(function, "__defaults__", None), depth + 1)
        _add_value(digest, tuple(sorted((getattr(function, "__kwdefaults__", None) or {}).items())), depth + 1)


def _add_value(digest: Any, value: Any, depth: int) -> None:
    """Add a value a function is bound to, as a string that is the same in every process (no ids, no hash order)."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        digest.update(f"{type(value).__name__}:{value!r}\0".encode())
    elif isinstance(value, tuple) and depth < _FINGERPRINT_DEPTH:
        digest.update(f"tuple:{len(value)}(".encode())
        for item in value:
            _add_value(digest, item, depth + 1)
        digest.update(b")")
    elif isinstance(value, frozenset) and depth < _FINGERPRINT_DEPTH:
        parts = []
        for item in value:
            part = hashlib.sha256()
            _add_value(part, item, depth + 1)
            parts.append(part.hexdigest())
        digest.update(("frozenset(" + ",".join(sorted(parts)) + ")").encode())
    elif isinstance(value, re.Pattern):
        digest.update(f"re:{value.pattern!r}:{value.flags}\0".encode())
    elif callable(value) and depth < _FINGERPRINT_DEPTH and (
            isinstance(value, functools.partial) or hasattr(value, "__code__")):
        _add_callable(digest, value, depth + 1)
    else:  # mutable or opaque: its type only
        digest.update(f"{type(value).__module__}.{type(value).__qualname__}\0".encode())


@dataclass(frozen=True)
class FeatureType:
    """What a feature type is: how its values are produced and how results show it.

    Args:
        name (`str`): the name used in ``features=``, in column names (``length_<name>``) and in saved results.
        kind (`str`): ``"text"`` when the values are pieces of the input (subword tokens, words: open-ended, no
            corpus frequency worth comparing), ``"tag"`` when they are labels from a small set (POS, a user label):
            tags get mass-share columns, tables and plots.
        source (`str`): how the values are produced: ``"token"`` (the subword token), ``"word"`` (the spaCy word
            containing the token), ``"spacy"`` (a spaCy token attribute of that word) or ``"user"`` (a function
            labelling character spans).
        description (`str`): one line for help texts.
        order (`int`, *optional*, defaults to 10): reading order; the lowest tag is the default feature of
            figures, tables and neuron summaries, and the lowest text feature names a neuron's preferred inputs.
        spacy_attribute (`str`, *optional*): the ``spacy.tokens.Token`` attribute of a ``"spacy"`` feature.
        spacy_missing (`str`, *optional*): the label of a word for which spaCy gives none, where spaCy's empty value
            means something (``"O"``: outside entities); None gives such a word no value (no credit for this feature,
            as a token outside every word or a user feature's unlabelled one). A stand-in label would mix with a real
            one: ``"dep"`` is a spaCy dependency label ("unclassified dependent") and ``"X"`` a UPOS tag.
        spacy_assigns (`tuple[str]`, *optional*): the attributes, as spaCy components declare them in their
            ``assigns`` metadata (``"token.dep"``), of which a pipeline must run at least one for a ``"spacy"``
            feature: without, spaCy leaves `spacy_attribute` empty and every word would read `spacy_missing`.
        fn (`Callable`, *optional*): a ``"user"`` feature's ``fn(text) -> [(start, end, label), ...]``.
    """

    name: str
    kind: Literal["text", "tag"]
    source: Literal["token", "word", "spacy", "user"]
    description: str = ""
    order: int = USER_FEATURE_ORDER
    spacy_attribute: str | None = None
    spacy_missing: str | None = None
    spacy_assigns: tuple[str, ...] = ()
    fn: Callable[[str], Iterable[tuple[int, int, str]]] | None = None

    @property
    def is_tag(self) -> bool:
        """Tag-like: a small label set, so mass share vs corpus frequency applies (columns, tables, plots)."""
        return self.kind == "tag"

    @property
    def needs_words(self) -> bool:
        """Values come from spaCy words (word boundaries, tags), so the corpus goes through the word annotator."""
        return self.source in ("word", "spacy")


BUILTIN_FEATURE_TYPES = (
    FeatureType("token", "text", "token", "the subword token at the position", order=21),
    FeatureType("word", "text", "word", "the whole (spaCy) word the token belongs to", order=20),
    FeatureType("pos", "tag", "spacy", "Universal POS tag of the word (spaCy)", order=0, spacy_attribute="pos_",
                spacy_assigns=("token.pos",)),
    FeatureType("dep", "tag", "spacy", "dependency label of the word (spaCy)", order=1, spacy_attribute="dep_",
                spacy_assigns=("token.dep",)),
    FeatureType("ner", "tag", "spacy", "named-entity type of the word, O outside entities (spaCy)", order=2,
                spacy_attribute="ent_type_", spacy_missing="O",
                spacy_assigns=("doc.ents", "token.ent_type")),
)
_REGISTRY: dict[str, FeatureType] = {ft.name: ft for ft in BUILTIN_FEATURE_TYPES}
BUILTIN_FEATURES = tuple(ft.name for ft in BUILTIN_FEATURE_TYPES)
TAG_FEATURES = tuple(ft.name for ft in BUILTIN_FEATURE_TYPES if ft.source == "spacy")


def register_feature(feature: FeatureType | UserFeature, overwrite: bool = False, *, replace: bool | None = None
                     ) -> FeatureType:
    """Register a feature type, so that it is accepted by name (``features=("token", "entity")``, the trainer's
    ``txray_features``) and shown like the built-in ones.

    Args:
        feature (`FeatureType` or `UserFeature`): a user feature; a `UserFeature` becomes a tag-like
            ``FeatureType`` of source ``"user"`` (pass a `FeatureType` to set its description or order).
        overwrite (`bool`, *optional*, defaults to `False`): replace a registered user feature of the same name (the
            name `register_pruning_strategy` and `register_ablation_metric` use).
        replace (`bool`, *optional*): the former name of `overwrite`, still read, with a `FutureWarning`.

    Returns:
        `FeatureType`: the registered record.

    Raises:
        `ConfigurationError`: the name is a built-in feature, is already registered with another function or fields
            (without `overwrite`; the same definition again, a notebook cell run twice, is taken), `overwrite` and
            `replace` both given, the
            feature is not a user feature with a function (the built-in sources are fixed), or its kind is neither
            ``"tag"`` nor ``"text"``.

    Example:
        ```python
        >>> register_feature(UserFeature("digit", lambda text: [(i, i + 1, "digit") for i, c in enumerate(text)
        ...                                                      if c.isdigit()]))
        >>> profile = hf_txray.analyze(model, texts, features=("token", "pos", "digit"))
        ```
    """
    if not isinstance(feature, (FeatureType, UserFeature)):  # 3 failed "'int' object has no attribute 'name'"
        raise ConfigurationError(f"register_feature takes a UserFeature(name, fn) or a FeatureType, got "
                                 f"{type(feature).__name__} {feature!r:.60}.")
    overwrite = _overwrite_of(overwrite, replace)
    check_user_feature(feature.name, feature.fn)
    if isinstance(feature, UserFeature):
        feature = FeatureType(feature.name, "tag", "user", (feature.fn.__doc__ or "").strip().split("\n")[0],
                              fn=feature.fn)
    if feature.source != "user":
        raise ConfigurationError(f"User feature {feature.name!r} needs fn(text) -> [(start, end, label), ...].")
    if feature.kind not in FEATURE_KIND_VALUES:  # "Tag" read as text (no mass share), and saved results unreadable
        raise ConfigurationError(f"User feature {feature.name!r} has kind {feature.kind!r}; use 'tag' (labels from a "
                                 "small set: mass-share tables and plots) or 'text' (open-ended pieces of the input).")
    registered = _REGISTRY.get(feature.name)
    # the same definition again (a notebook cell run twice makes a new function of the same code) is taken: it was
    # refused, and a notebook's cell that registers a feature failed on its second run (helper 428)
    if registered is not None and not overwrite and not same_definition(registered, feature, "fn"):
        raise ConfigurationError(f"Feature {feature.name!r} is already registered (with another function or fields); "
                                 "pass overwrite=True to replace it.")
    _REGISTRY[feature.name] = feature
    return feature


def _overwrite_of(overwrite: Any, replace: Any) -> bool:
    """`register_feature`'s switch: `overwrite`, or `replace` (its name until the three registries were given one)."""
    overwrite = check_switch("overwrite", overwrite)  # overwrite="no" (a truthy string) would replace a feature
    if replace is None:
        return overwrite
    if overwrite:
        raise ConfigurationError("register_feature got both overwrite= and replace= (its former name): pass "
                                 "overwrite= alone.")
    warnings.warn("register_feature's replace= is now overwrite=, as in register_pruning_strategy and "
                  "register_ablation_metric; replace= will be removed.", FutureWarning, stacklevel=3)
    return check_switch("replace", replace)


def same_definition(registered: Any, new: Any, function: str) -> bool:
    """Whether `new` defines what `registered` does: two records (dataclasses) of a registry with equal fields, and
    functions (the field `function`) that compute the same (:func:`same_function`). Registering such a record again
    is no clash: a notebook cell run again defines a new function of the same code."""
    fn_a, fn_b = getattr(registered, function), getattr(new, function)
    return (type(registered) is type(new) and callable(fn_a) and callable(fn_b)
            and dataclasses.replace(registered, **{function: None}) == dataclasses.replace(new, **{function: None})
            and same_function(fn_a, fn_b))


def same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two callables compute the same thing, read without running them: the same object, or Python functions
    of one :func:`code_fingerprint` that read the same globals (one module's namespace: a notebook's cell run again;
    or equal values under the names their code reads: a script run twice in fresh namespaces) and are bound to equal
    values (closure cells, defaults, a ``functools.partial``'s arguments, a bound method's very instance; values
    compared with ``==``, functions among them by this rule). Anything else (a builtin, a callable instance) is the
    same only as itself.

    :func:`code_fingerprint` alone does not tell them apart where it cannot be stable across processes: it reads a
    mutable value (a dict, a list) and an instance by type only, a builtin by its type, and no globals; taken as the
    same definition, a factory's labeller over another dict, a lambda with another list as default, another
    instance's method, ``str.rsplit`` for ``str.split`` or the same code reading other globals replaced the registered
    function with no error (helper 434)."""
    return _same_callable(a, b, set())


def _same_callable(a: Any, b: Any, pending: set[tuple[int, int]]) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or (id(a), id(b)) in pending:  # a pair being compared (recursion): its other parts decide
        return type(a) is type(b)
    pending.add((id(a), id(b)))
    if isinstance(a, functools.partial):
        return (_same_callable(a.func, b.func, pending) and _same_value(a.args, b.args, pending)
                and _same_value(a.keywords, b.keywords, pending))
    if isinstance(a, types.MethodType):
        return a.__self__ is b.__self__ and _same_callable(a.__func__, b.__func__, pending)
    if isinstance(a, types.FunctionType):
        return (code_fingerprint(a) == code_fingerprint(b)
                and (a.__globals__ is b.__globals__ or all(  # `%run` twice, a fresh namespace: the globals it reads
                    _same_value(a.__globals__.get(n, _MISSING), b.__globals__.get(n, _MISSING), pending)
                    for n in sorted(_names_read(a.__code__))))
                and _same_value(_closure_values(a), _closure_values(b), pending)
                and _same_value(a.__defaults__, b.__defaults__, pending)
                and _same_value(a.__kwdefaults__, b.__kwdefaults__, pending))
    return False


def _names_read(code: types.CodeType) -> set[str]:
    """The global (and attribute) names `code` and the code nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_read(const)
    return names


_MISSING = object()  # a name a function's globals do not hold (a builtin)


def _closure_values(fn: types.FunctionType) -> tuple:
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            values.append(_EMPTY_CELL)
    return tuple(values)


_EMPTY_CELL = object()


def _same_value(a: Any, b: Any, pending: set[tuple[int, int]]) -> bool:
    """Equal values a function is bound to (:func:`same_function`)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y, pending) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k], pending) for k in a)
    if callable(a) and not isinstance(a, type):
        return _same_callable(a, b, pending)
    try:
        equal = a == b
    except Exception:  # a value that cannot be compared is not known to be equal
        return False
    return equal if isinstance(equal, bool) else False


# Names whose per-feature columns are columns of their own: a user feature "examples" had its top_examples (its top
# features) replaced by the neuron cards' top examples, "position" by the int top_position (the first-position
# statistics), with no error, in the exported neuron_cards config (helper 308)
RESERVED_FEATURE_NAMES = {"examples": "top examples", "position": "top position index",
                          "position_share": "top position's share of the mass"}


def check_feature_columns(names: Sequence[str]) -> None:
    """Refuse feature names whose columns would be another feature's: a transfer report's ``hellinger_<name>`` of a
    feature ``length_<x>`` is ``hellinger_length_<x>``, the Hellinger length of the feature ``x`` profiled beside
    it, and one replaced the other in ``report.neurons`` (and so in the pushed transfer_reports config).

    Raises:
        `ConfigurationError`: naming both features.
    """
    for name in names:
        if name.startswith("length_") and name.removeprefix("length_") in names:
            raise ConfigurationError(
                f"Features {name.removeprefix('length_')!r} and {name!r} cannot be profiled together: the report "
                f"column hellinger_{name} (the Hellinger distance of {name!r}) is the Hellinger length of "
                f"{name.removeprefix('length_')!r}, and one would replace the other. Rename the user feature.")


def check_user_feature(name: Any, fn: Any) -> None:
    """Refuse a user feature whose name cannot name columns and saved tables, or whose function is not callable.

    A name that is not a string failed with a bare ``KeyError`` after loading the model, an empty one made columns
    ``length_`` and ``entropy_``, and one with surrounding spaces (``"case "``) columns that read as another
    feature's; a function that is not callable failed with a ``TypeError`` at the first text. A name holding a control
    character or line separator is refused as a stage name is: ``"n\\x1b[31mx\\ny"`` went raw into ``hf-txray show``
    and ``compare`` (their headers and table titles), turning the terminal red and breaking lines (helper 356).

    Raises:
        `ConfigurationError`: the name is not a non-empty string without surrounding whitespace, holds a control
            character (a newline, a tab, ESC...) or line separator, is a built-in feature or one of
            :data:`RESERVED_FEATURE_NAMES`, or `fn` is not callable.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ConfigurationError(f"User feature name {name!r} must be a non-empty string without surrounding "
                                 "whitespace: it names the feature's columns (length_<name>) and saved tables.")
    bad = control_characters(name)
    if bad:  # as a stage name is (options.check_stage_name)
        raise ConfigurationError(f"User feature name {name!r} holds the control character(s) "
                                 f"{', '.join(map(repr, bad))}: it names columns and is written into the tables of "
                                 "cards, figures and the terminal; give one line of text, e.g. "
                                 f"{one_line_name(name)!r}.")
    if name in BUILTIN_FEATURES:
        raise ConfigurationError(f"User feature name {name!r} clashes with a built-in feature.")
    if name in RESERVED_FEATURE_NAMES:
        raise ConfigurationError(
            f"User feature name {name!r} is taken: its top features' column top_{name} would be the neuron cards' "
            f"{RESERVED_FEATURE_NAMES[name]} and one would be lost. Give the feature another name, e.g. "
            f"'{name}_label'.")
    if not callable(fn):
        raise ConfigurationError(f"User feature {name!r} needs fn(text) -> [(start, end, label), ...]; got "
                                 f"{type(fn).__name__} {fn!r:.60}, which is not callable.")


def unregister_feature(name: str) -> None:
    """Remove a registered user feature (built-in ones stay)."""
    if name in BUILTIN_FEATURES:
        raise ConfigurationError(f"{name!r} is a built-in feature and cannot be unregistered.")
    _REGISTRY.pop(name, None)


def registered_features() -> tuple[str, ...]:
    """The names accepted in ``features=``: built-in first, then registered user features in registration order."""
    return tuple(_REGISTRY)


def get_feature_type(name: str) -> FeatureType:
    """The registered feature type `name`.

    Args:
        name (`str`): a built-in (``"token"``, ``"pos"``...) or registered (:func:`register_feature`) feature name.

    Returns:
        `FeatureType`: its description.

    Raises:
        ConfigurationError: `name` is not registered; the message lists the registered names.
    """
    found = _REGISTRY.get(name) if isinstance(name, str) else None  # ["pos"]: a bare "unhashable type: 'list'"
    if found is None:
        raise ConfigurationError(_unknown_message(name))
    return found


def _unknown_message(feature: Any) -> str:
    listed = (f" To give several, pass a tuple: {tuple(part.strip() for part in feature.split(','))!r} (the CLI "
              "takes the comma form).") if isinstance(feature, str) and "," in feature else ""
    return (f"Unknown feature {feature!r}: use one of {', '.join(registered_features())}, a UserFeature, or a "
            "(name, callable) pair; register your own with hf_txray.register_feature(UserFeature(name, fn))."
            f"{listed}")


FEATURE_KIND_VALUES = ("text", "tag")  # the values of FeatureType.kind


def feature_type_of(name: str, kinds: Mapping[str, str] | None = None,
                    orders: Mapping[str, float] | None = None) -> FeatureType:
    """The feature type of a name read from results: registered, else a user feature of the run that wrote them
    (tag-like; its function is not needed to read or show results).

    Args:
        name (`str`): the feature type's name.
        kinds (`Mapping[str, str]`, *optional*): the kinds the results recorded (``meta.feature_kinds`` of a profile
            or report): a recorded kind wins over the registered one and over the tag default, since it is the kind
            the run that wrote them had. A user feature registered as ``"text"`` was read back as a tag in a process
            that had not registered it (a profile loaded elsewhere, or from the Hub): ``compare`` gave mass-share
            rows where the registering process gave none, and figures another default feature.
        orders (`Mapping[str, float]`, *optional*): the reading orders the results recorded (``meta.feature_orders``),
            which win over the registered one and over the user default (:data:`USER_FEATURE_ORDER`) alike: a user
            tag registered with ``order=-1`` was read back with order 10 in a process that had not registered it, so
            figures, the card and ``show`` chose another default feature, and summaries another tag.
    """
    registered = _REGISTRY.get(name) or FeatureType(name, "tag", "user")
    recorded = {"kind": (kinds or {}).get(name), "order": (orders or {}).get(name)}
    changes = {key: value for key, value in recorded.items() if value is not None and value != getattr(registered, key)}
    return dataclasses.replace(registered, **changes) if changes else registered


def is_tag_feature(name: str, kinds: Mapping[str, str] | None = None) -> bool:
    """Whether mass-share columns, tables and plots apply to the feature type `name` (see :attr:`FeatureType.kind`;
    `kinds` as in :func:`feature_type_of`)."""
    return feature_type_of(name, kinds).is_tag


def tag_features(names: Iterable[str], kinds: Mapping[str, str] | None = None) -> list[str]:
    """The tag-like names of `names`, in the order given (`kinds` as in :func:`feature_type_of`)."""
    return [name for name in names if is_tag_feature(name, kinds)]


def text_features(names: Iterable[str], kinds: Mapping[str, str] | None = None) -> list[str]:
    """The text-like names of `names` (token, word), in the order given (`kinds` as in :func:`feature_type_of`)."""
    return [name for name in names if not is_tag_feature(name, kinds)]


def reading_order(names: Iterable[str], orders: Mapping[str, float] | None = None) -> list[str]:
    """`names` by :attr:`FeatureType.order` (pos, dep, ner, user tags, word, token); ties keep the given order.
    `orders`: the reading orders the results recorded (``meta.feature_orders``), as in :func:`feature_type_of`."""
    return sorted(names, key=lambda name: feature_type_of(name, orders=orders).order)


def display_order(names: Iterable[str], kinds: Mapping[str, str] | None = None) -> list[str]:
    """Tags first, then text features, each in the given order: the order of per-feature panels and tables (`kinds`
    as in :func:`feature_type_of`)."""
    names = list(names)
    return tag_features(names, kinds) + text_features(names, kinds)


def default_feature_type(feature_types: Sequence[str], categorical: bool = False,
                         kinds: Mapping[str, str] | None = None, orders: Mapping[str, float] | None = None) -> str:
    """The feature type figures, tables and summaries show first: the first tag in reading order (``"pos"`` when
    profiled, then dep, ner, user tags), else (unless `categorical`) the first feature. `kinds` and `orders`: the
    kinds and reading orders the results recorded (``meta.feature_kinds``, ``meta.feature_orders``), as in
    :func:`feature_type_of`.

    Raises:
        `ConfigurationError`: no tag-like feature when `categorical`, or no feature at all.
    """
    tags = reading_order(tag_features(feature_types, kinds), orders)
    if tags:
        return tags[0]
    if categorical or not feature_types:
        raise ConfigurationError(f"No tag-like feature (pos, dep, ner or a user feature) among {list(feature_types)}.")
    return feature_types[0]


def check_feature_kinds(kinds: Any, what: str) -> dict[str, str]:
    """The feature kinds a saved record holds (``{name: "text" | "tag"}``), checked: a built-in feature keeps its
    own kind.

    Raises:
        `ProfileFormatError`: the record is no mapping of names to ``"text"`` or ``"tag"``, or gives a built-in
            feature another kind (naming `what` was read).
    """
    if not isinstance(kinds, Mapping) or not all(isinstance(name, str) and kind in FEATURE_KIND_VALUES
                                                 for name, kind in kinds.items()):
        raise ProfileFormatError(f"The feature kinds recorded in {what} ({kinds!r:.120}) are not a mapping of feature "
                                 "names to 'text' or 'tag': the metadata was damaged or built by hand. Save it again "
                                 "from its source.")
    for name, kind in kinds.items():
        if name in BUILTIN_FEATURES and _REGISTRY[name].kind != kind:
            raise ProfileFormatError(f"{what} records the built-in feature {name!r} as {kind!r}; it is "
                                     f"{_REGISTRY[name].kind!r}: the metadata was damaged or built by hand.")
    return dict(kinds)


def check_feature_orders(orders: Any, what: str) -> dict[str, float]:
    """The reading orders a saved record holds (``{name: order}``, :attr:`FeatureType.order`), checked.

    Raises:
        `ProfileFormatError`: the record is no mapping of names to finite numbers (naming `what` was read).
    """
    if not isinstance(orders, Mapping) or not all(
            isinstance(name, str) and isinstance(order, (int, float)) and not isinstance(order, bool)
            and math.isfinite(order) for name, order in orders.items()):
        raise ProfileFormatError(f"The feature reading orders recorded in {what} ({orders!r:.120}) are not a mapping "
                                 "of feature names to numbers: the metadata was damaged or built by hand. Save it "
                                 "again from its source.")
    return dict(orders)


def parse_features(features: Sequence[Any]) -> tuple[list[str], dict[str, UserFeature]]:
    """Split the `features` argument into the ordered list of feature names and the user features by name.

    Names may be built-in or registered (:func:`register_feature`); unknown ones raise a `ConfigurationError`
    listing the registered names.
    """
    if isinstance(features, (str, UserFeature)):
        features = [features]
    names: list[str] = []
    user: dict[str, UserFeature] = {}
    for feature in features:
        if isinstance(feature, tuple) and len(feature) == 2 and callable(feature[1]):
            feature = UserFeature(str(feature[0]), feature[1])
        if isinstance(feature, UserFeature):
            check_user_feature(feature.name, feature.fn)
            user[feature.name] = feature
            name = feature.name
        elif isinstance(feature, str):
            registered = get_feature_type(feature)
            if registered.source == "user":
                user[feature] = UserFeature(feature, registered.fn)
            name = feature
        else:
            raise ConfigurationError(_unknown_message(feature))
        if name in names:
            raise ConfigurationError(f"Feature {name!r} is listed twice.")
        names.append(name)
    if not names:
        raise ConfigurationError("features is empty: pass at least one, e.g. ('token', 'pos').")
    check_feature_columns(names)
    return names, user


def needs_words(feature_names: Sequence[str]) -> bool:
    """Whether any of the features comes from spaCy words (word boundaries or tags)."""
    return any(feature_type_of(name).needs_words for name in feature_names)
