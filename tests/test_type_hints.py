"""The public API's annotations resolve at runtime: ``typing.get_type_hints`` (which pydantic, typer, jsonargparse and
sphinx-autodoc call) finds every name an annotation uses, not only the names a type checker sees under
``if TYPE_CHECKING:``."""

from __future__ import annotations

import inspect
import typing

import pytest

import hf_txray
from hf_txray.viewer import deploy_space


@pytest.mark.parametrize("function", [
    hf_txray.push_to_hub, hf_txray.Profile.push_to_hub, hf_txray.TransferReport.push_to_hub,
    hf_txray.PruningPlan.push_to_hub, hf_txray.ProbingResult.push_to_hub, deploy_space,
], ids=lambda f: f.__qualname__)
def test_push_to_hub_annotations_resolve(function):
    """``-> CommitInfo`` named huggingface_hub's class imported only for type checkers: NameError at runtime."""
    hints = typing.get_type_hints(function)
    assert hints["return"].__name__ == "CommitInfo"


def test_load_results_annotations_resolve():
    """TXRayResults (what ``hf_txray.load`` returns) named Profile and TransferReport imported only for type checkers."""
    hints = typing.get_type_hints(hf_txray.TXRayResults)
    assert hints == {"profiles": dict[str, hf_txray.Profile], "reports": dict[str, hf_txray.TransferReport]}


def test_trace_annotations_resolve():
    """trace and Trace named Site imported only for type checkers (sites.py imports hooks.py, not the reverse)."""
    from hf_txray.sites import Site

    assert typing.get_type_hints(hf_txray.trace)["sites"] == typing.Sequence[Site]
    assert typing.get_type_hints(hf_txray.Trace.__init__)["sites"] == typing.Sequence[Site]
    assert typing.get_type_hints(hf_txray.Trace.missing)["return"] == list[Site]


@pytest.mark.parametrize("function", [hf_txray.dispersion, hf_txray.homogeneity, hf_txray.homogeneity_pvalues],
                         ids=lambda f: f.__name__)
def test_significance_annotations_resolve(function):
    """The per-neuron tests named FeatureTable imported only for type checkers (profile.py imports significance.py);
    the class now lives below both, in hf_txray.feature_table, and is still hf_txray.profile.FeatureTable."""
    from hf_txray.profile import FeatureTable

    assert FeatureTable in typing.get_type_hints(function).values()


def test_trainer_arguments_declare_their_added_options_for_type_checkers():
    """The ``txray_*`` fields of TXRayArguments are added at runtime by a decorator that type checkers do not run:
    the class declares them again under ``if TYPE_CHECKING:`` (README's ``TXRayArguments(txray_features=[...])`` was
    an unknown argument to mypy). The declarations name the added fields, in order, with their types and defaults."""
    import ast
    import dataclasses
    import inspect

    from hf_txray.options import TRAINER_OPTIONS
    from hf_txray.trainer import arguments

    added = {f.name: f for f in dataclasses.fields(hf_txray.TXRayArguments) if f.name.startswith("txray_")}
    tree = ast.parse(inspect.getsource(arguments))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "TXRayArguments").body
    block = next(node for node in body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    declared = [(stmt.target.id, eval(ast.unparse(stmt.annotation), vars(arguments)),
                 eval(ast.unparse(stmt.value), vars(arguments))) for stmt in block.body]
    assert [name for name, _, _ in declared] == [f"txray_{name}" for name in TRAINER_OPTIONS]
    for name, annotation, default in declared:
        # the class's annotation, not the Field's type: transformers' HfArgumentParser rewrites a parsed dataclass's
        # Field.type in place (str | None -> str), so a test that parsed TXRayArguments first changed what this read
        assert annotation == hf_txray.TXRayArguments.__annotations__[name], name
        if isinstance(default, dataclasses.Field):
            assert default.default_factory() == added[name].default_factory(), name
        else:
            assert default == added[name].default, name


def test_no_public_name_is_declared_from_a_package_holding_a_submodule_of_that_name():
    """``from .probing import crosscheck`` under TYPE_CHECKING made mypy type ``hf_txray.crosscheck`` as the module
    hf_txray.probing.crosscheck (and report a redefinition), while at runtime it is the function: a name is declared
    from the module that defines it when its package also holds a submodule of that name."""
    from pathlib import Path

    root = Path(hf_txray.__file__).parent
    shadowed = [(module, name) for module, names in hf_txray.LAZY_EXPORTS.items() for name in names
                if (root / module.replace(".", "/") / f"{name}.py").exists()
                or (root / module.replace(".", "/") / name).is_dir()]
    assert not shadowed


def _public_callables() -> list[tuple[str, object]]:
    """Every callable of ``hf_txray.__all__`` and the README's module-level entry points, and the public methods and
    properties that hf_txray's own public classes define (inherited ones, e.g. transformers' Trainer.train, are
    transformers' business)."""
    from hf_txray import corpora
    from hf_txray.probing import ProbeMetric, from_spacy
    from hf_txray.pruning import plan_pruning
    from hf_txray.sites import find_sites

    named = [(name, getattr(hf_txray, name)) for name in hf_txray.__all__]
    named += [(f.__qualname__, f) for f in (deploy_space, plan_pruning, find_sites, ProbeMetric, from_spacy,
                                             corpora.default_model_path, corpora.penn_treebank, corpora.bbc_news)]
    out = []
    for name, obj in named:
        if inspect.ismodule(obj) or not callable(obj):
            continue
        out.append((name, obj))
        if inspect.isclass(obj):
            for attribute, raw in vars(obj).items():
                function = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
                if (inspect.isfunction(function) and (not attribute.startswith("_") or attribute == "__init__")
                        and function.__module__.startswith("hf_txray")):
                    out.append((f"{name}.{attribute}", function))
    return out


@pytest.mark.parametrize(("name", "obj"), _public_callables(), ids=[name for name, _ in _public_callables()])
def test_every_public_annotation_resolves_at_runtime(name, obj):
    typing.get_type_hints(obj)


# ----- docstrings: the Args section names the signature's parameters, no more, no less --------------------------------


def _head_end(line: str) -> int | None:
    """Where an Args entry's head (``name (`type`, *optional*)``) ends: its first colon outside parentheses, brackets
    and backticks; None when the line has none (a head continued on the next line)."""
    depth, ticked = 0, False
    for index, char in enumerate(line):
        if char == "`":
            ticked = not ticked
        elif not ticked and char in "([":
            depth += 1
        elif not ticked and char in ")]":
            depth -= 1
        elif char == ":" and depth == 0 and not ticked:
            return index
    return None


def _head_names(head: str) -> list[str]:
    """The parameter names of an entry's head: ``p, q`` and ``layer (`int`), neuron (`int`)`` name two each."""
    names, depth, current = [], 0, ""
    for char in head:
        depth += char in "([" and 1 or char in ")]" and -1 or 0
        if depth == 0 and char == ",":
            names.append(current)
            current = ""
        elif depth == 0 and char not in ")]":
            current += char
    names.append(current)
    return [name.strip().lstrip("*") for name in names if name.strip()]


def documented_names(doc: str, section: str = "Args") -> list[str] | None:
    """The names an HF-style section (``Args:`` or ``Attributes:``) of `doc` documents, in order; None without one.
    Entries sit at the section's first indentation; a head may run over several lines up to its colon (``a, b,
    ...,`` then ``c, d: as in ...``)."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == f"{section}:" and not line[0].isspace()), None)
    if start is None:
        return None
    names: list[str] = []
    indent, pending = None, ""
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break
        indent = depth if indent is None else indent
        if depth == indent or pending:
            text = pending + " " + line.strip() if pending else line.strip()
            end = _head_end(text)
            if end is None:
                pending = text
                continue
            names += _head_names(text[:end])
            pending = ""
    return names


def _parameters(obj) -> list[str]:
    return [name for name in inspect.signature(obj).parameters if name not in ("self", "cls")]


def _documentation(name: str, obj) -> tuple[list[str] | None, list[str]]:
    """What `obj`'s docstring documents (its Args section; a class's, else its ``__init__``'s, else its Attributes)
    and the parameters it must name: TXRayArguments' own fields only (TrainingArguments' are transformers')."""
    parameters = _parameters(obj)
    if obj is hf_txray.TXRayArguments:
        parameters = [p for p in parameters if p.startswith("txray_")]
    doc = inspect.getdoc(obj) or ""
    names = documented_names(doc)
    if names is None and inspect.isclass(obj):
        names = documented_names(inspect.getdoc(vars(obj).get("__init__")) or "") if "__init__" in vars(obj) else None
        names = documented_names(doc, "Attributes") if names is None else names
    return names, parameters


@pytest.mark.parametrize(("name", "obj"), _public_callables(), ids=[name for name, _ in _public_callables()])
def test_documented_arguments_are_the_signature(name, obj):
    """Where a public callable's docstring has an Args section (or, for a dataclass, Attributes), it names every
    parameter of the signature once and no parameter the signature lacks: a renamed or added argument cannot leave
    the documentation behind (``deploy_space``'s `commit_message` and ``probe_neurons``' `probe_options` were
    undocumented, ``ProfileMeta`` documented 7 of its 25 fields)."""
    names, parameters = _documentation(name, obj)
    if names is None:
        return
    assert sorted(names) == sorted(parameters), (
        f"{name}: undocumented {sorted(set(parameters) - set(names))}, documented but not parameters "
        f"{sorted(set(names) - set(parameters))}, documented twice {sorted({n for n in names if names.count(n) > 1})}")


def _must_document() -> list[tuple[str, object]]:
    """Every public function that takes arguments, and the methods users call (the README's), must have an Args
    section; the exceptions' constructors and the Trainer's and callback's overrides of transformers' hooks are not
    hf_txray's API."""
    from hf_txray.probing import ProbeMetric

    methods = {
        hf_txray.Profile: ("distribution", "feature_stats", "top_features", "top_examples", "feature_frequency",
                           "mass_share", "to_pandas", "activation_distribution", "merge", "renumbered",
                           "check_compatible", "diagnostics"),
        hf_txray.TransferReport: ("most_changed", "least_changed", "enough_credits", "too_few_credits", "made_from"),
        hf_txray.Artifact: ("save_pretrained", "from_pretrained", "push_to_hub"),
        hf_txray.ProbingResult: ("top_neurons", "held_out", "trained_on"),
    }
    out = [(name, obj) for name, obj in _public_callables()
           if inspect.isfunction(obj) and "." not in name and _parameters(obj)]
    out += [(f"{cls.__name__}.{method}", getattr(cls, method)) for cls, names in methods.items() for method in names]
    out += [("ProbeMetric", ProbeMetric), ("Profile", hf_txray.Profile), ("ProfileMeta", hf_txray.ProfileMeta),
            ("ReportMeta", hf_txray.ReportMeta), ("PruningPlan", hf_txray.PruningPlan)]
    return out


@pytest.mark.parametrize(("name", "obj"), _must_document(), ids=[name for name, _ in _must_document()])
def test_public_functions_document_their_arguments(name, obj):
    names, parameters = _documentation(name, obj)
    assert names is not None, f"{name} has no Args section for {parameters}"
    assert sorted(names) == sorted(parameters)


def test_documented_names_reads_hf_style_heads():
    doc = """Summary.

    Args:
        p, q (`np.ndarray`, shape `(n,)`): two.
        layer (`int`), neuron (`int`): the neuron: its layer.
        a, b,
            c: as in :func:`x` (with a colon: here).
        k (`int`, *optional*, defaults to 10): how many.
            continued: not a name.

    Returns:
        `int`: nothing.
    """
    assert documented_names(inspect.cleandoc(doc)) == ["p", "q", "layer", "neuron", "a", "b", "c", "k"]
