"""The package's import graph (issue 11): no circles, and no private names imported from another module.

Parses every module of ``hf_txray`` with :mod:`ast` (nothing is imported). Every import counts, including the lazy ones
inside functions, which hide a circle rather than remove it; only ``if TYPE_CHECKING:`` blocks are left out (they never
run). A package's ``__init__`` importing its own submodules is how a package exposes them; a submodule importing its own
package's ``__init__`` is a circle like any other.
"""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hf_txray"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def _imports(module: str, path: Path):
    """Yield (imported module, imported name or None) for every import of `module` inside the package."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", None
                elif base in MODULES:
                    yield base, alias.name


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module, path in MODULES.items():
        for target, _ in _imports(module, path):
            if target != module:
                graph.add_edge(module, target)
    return graph


def test_the_parser_sees_the_package():
    graph = _graph()
    assert {"hf_txray", "hf_txray.profile", "hf_txray.analyze"} <= set(graph)
    assert graph.has_edge("hf_txray.analyze", "hf_txray.profile")  # analyze builds profiles
    assert graph.number_of_edges() > 50


def test_no_import_circles():
    circles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    private = sorted({f"{target}.{name}" for target, name in _imports(module, MODULES[module])
                      if name and name.startswith("_") and not name.startswith("__") and target != module})
    assert not private, f"{module} imports private names of other modules: {private}"


def test_no_unused_imports_or_names():
    """pyflakes (a test dependency) finds no unused import, variable or redefinition: a name kept for others to
    import is either imported from its home or listed in its package's ``__all__``."""
    import pyflakes.reporter as reporter_module
    from pyflakes.api import checkRecursive

    warnings = io.StringIO()
    count = checkRecursive([str(PACKAGE)], reporter_module.Reporter(warnings, warnings))
    assert count == 0, warnings.getvalue()


HEAVY = ("torch", "transformers", "datasets", "pandas", "gradio", "spacy", "matplotlib")


def _imported_by(statement: str) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after `statement`, in a fresh interpreter."""
    code = (f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import hf_txray.cli",
    "import hf_txray; hf_txray.ConfigurationError, hf_txray.__version__, hf_txray.logging",
    "from hf_txray.cli import build_parser; build_parser()",  # every command's options: what --help prints
    "from hf_txray.options import AnalyzeOptions; AnalyzeOptions().profiler_config().validate()",
])
def test_the_cli_and_its_help_import_no_heavy_library(statement):
    """`hf-txray --help` and `hf-txray <command> --help` build the parser only: no torch, transformers, datasets,
    pandas, gradio, spaCy or matplotlib (they cost seconds); commands import them when they run."""
    assert _imported_by(statement) == []


def test_reading_a_saved_profile_imports_no_torch():
    """`hf-txray show` (and any reader of a saved profile or report) needs no model: profile.py imported
    loading.split_and_slice at module level, and loading brought torch (about 3 CPU-s of a 4.7 s `hf-txray show`;
    every subprocess test of show paid it). Nor does the viewer until a live text is run: its live tab imported
    hf_txray.hooks (torch) at module level, and the app's probe-table headers hf_txray.probing (torch), ~2.2 of the
    ~8.4 CPU-s of importing the Space's app.py (tests/test_wheel.py checks the app itself)."""
    assert set(_imported_by("import hf_txray.profile, hf_txray.display, hf_txray.viewer")) & {
        "torch", "transformers", "datasets"} == set()


@pytest.mark.parametrize("statement", ["import hf_txray", "import hf_txray.cli"])
def test_the_plain_import_loads_neither_dataclasses_nor_inspect(statement):
    """`import hf_txray` (and of the CLI module, before a command is parsed) loads hf_txray.logging and its
    hf_txray.redaction only: a module-level ``import dataclasses`` there (for AnalyzeOptions' masked repr) brought
    dataclasses, inspect, ast and dis, and made the import 5-10 ms slower (25.9 -> 30.6 ms at best, 40 -> 51 ms
    median on the 2-core machine: helper 389)."""
    code = f"import sys; {statement}; print(sorted({{'dataclasses', 'inspect'}} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    baseline = subprocess.run([sys.executable, "-c", code.replace(statement, "pass")], capture_output=True,
                              text=True, env=env, check=True)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert ast.literal_eval(out.stdout.strip().splitlines()[-1]) == \
        ast.literal_eval(baseline.stdout.strip().splitlines()[-1])


def test_public_names_load_on_first_use_and_their_declarations_agree():
    """The lazy exports (``LAZY_EXPORTS``) and the ``TYPE_CHECKING`` imports that type checkers read name the same
    things from the same modules; every public name resolves, and a submodule named like its function
    (``hf_txray.analyze``, ``reproduce``, ``output_effects``) stays the function once the submodule is imported."""
    import hf_txray

    tree = ast.parse(MODULES["hf_txray"].read_text())
    declared: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                declared.setdefault(stmt.module, set()).update(alias.name for alias in stmt.names)
    assert declared == {module: set(names) for module, names in hf_txray.LAZY_EXPORTS.items()}
    lazy = [name for names in hf_txray.LAZY_EXPORTS.values() for name in names]
    eager = {"logging", "__version__", "TXRayError", "ConfigurationError", "DatasetError", "ModelError",
             "IncompatibleProfilesError", "ProfileFormatError", "HubError", "ReproducibilityError",
             "ArtifactNotFoundError", "OutputError", "ProcessFailedError"}
    assert sorted(hf_txray.__all__) == sorted([*eager, *lazy]) and len(set(lazy)) == len(lazy)
    assert _imported_by("import hf_txray.analyze, hf_txray.reproduce, hf_txray.output_effects; import hf_txray; "
                        "assert all(callable(getattr(hf_txray, n)) for n in ('analyze', 'reproduce', "
                        "'output_effects'))") != []
    for name in hf_txray.__all__:
        assert getattr(hf_txray, name) is not None, name
    assert set(hf_txray.__all__) <= set(dir(hf_txray)) and hf_txray.provenance.__name__ == "hf_txray.provenance"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hf_txray.nothing_here


def test_readme_names_every_public_name_and_documents_it():
    """Every name of ``hf_txray.__all__`` is named in the README (its public-names table, or the Errors section for
    the exception types) and carries a docstring; the table names nothing that is not public."""
    import inspect
    import re

    import hf_txray

    readme = (PACKAGE.parent / "README.md").read_text()
    start = readme.index("The public names, `hf_txray.<name>`")
    table = readme[start:readme.index("| folder / module |", start)]
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", table))
    errors = readme[readme.index("## Errors"):]
    errors = errors[:errors.index("\n## ")]
    missing = [name for name in hf_txray.__all__
               if name not in listed and not (name.endswith("Error") and f"`{name}`" in errors)]
    assert missing == [], f"public names the README does not name: {missing}"
    assert listed - set(hf_txray.__all__) - {"TXRayError"} == set()
    undocumented = [name for name in hf_txray.__all__ if name != "__version__" and name != "DEFAULT_MIN_COUNT"
                    and not (inspect.getdoc(getattr(hf_txray, name)) or "").strip()]
    assert undocumented == []


def test_readme_python_examples_write_under_an_ignored_folder():
    """Helper 422: the README's Python quickstart saved to ``profiles/pretrained`` and ``reports/...`` (and other
    examples to ``pruned``, ``state``, ``out``) in the current folder: run in a checkout, ``git status`` listed them.
    Every folder a Python example writes by a literal path is under one that .gitignore names (``results/``)."""
    import re

    # helper 424: the docstrings' examples too (card.save("README.md") wrote over the checkout's README, a
    # trainer.save_model("out/finetuned") was left), and the writers that make their folder
    sources = [PACKAGE.parent / "README.md", *sorted(PACKAGE.rglob("*.py"))]
    ignored = [line.strip().strip("/") + "/" for line in (PACKAGE.parent / ".gitignore").read_text().splitlines()
               if line.strip().endswith("/") and not line.startswith("#")]
    written = re.compile(r"""(?:(?:save_pretrained|save_model|save_to_disk|\.save)\(\s*|"""
                         r"""(?:output_dir|checkpoint_dir|out_dir)\s*=\s*)["']([^"']+)["']""")
    paths = [(source.name, m.group(1)) for source in sources
             for block in re.findall(r"```python\n(.*?)```", source.read_text(), re.S) for m in written.finditer(block)]
    assert len(paths) >= 12, paths  # the pattern still finds the examples
    assert [(name, p) for name, p in paths if not any(p.startswith(folder) for folder in ignored)] == []
