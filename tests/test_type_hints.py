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
        assert annotation == added[name].type, name
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
