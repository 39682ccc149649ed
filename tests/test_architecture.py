"""The dependency rules of docs/architecture.md §2, checked by walking every import with ``ast``.

Imports inside functions count too: a function-level import is how a cycle hides (``rac.predict`` once
imported ``rac.train`` that way while ``rac.train`` imported it back).
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "rac", "annotation", "reports")
UPPER = ("rac", "annotation", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (``from a import b`` counts ``a.b`` when
    ``b`` is a module, else ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_function_level_imports() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]
    assert "benchmark.study" in _graph()["benchmark.exports"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert _cycles(_graph()) == []


def test_benchmark_core_imports_no_upper_package() -> None:
    offenders = {name: sorted(m for m in deps if m.split(".")[0] in UPPER)
                 for name, deps in _graph().items()
                 if name.split(".")[0] == "benchmark" and not name.startswith("benchmark.cli")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_rac_does_not_import_annotation_and_reports_do_not_call_the_trainer() -> None:
    graph = _graph()
    assert {n: d for n, d in graph.items() if n.startswith("rac") and any(m.startswith("annotation") for m in d)} == {}
    assert {n: d for n, d in graph.items() if n.startswith("reports") and any(m.startswith("rac") for m in d)} == {}


def test_no_file_points_outside_the_repository_for_its_design() -> None:
    needle = "DESIGN" + ".md"  # spelled in two parts so this file does not match itself
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    hits = [name for name in listed if name and (ROOT / name).is_file()
            and needle in (ROOT / name).read_text(encoding="utf-8", errors="ignore")]
    assert hits == []


# The owner of the study's parquet files, and the one other module that reads parquet: a model's own long
# prediction table (``.parquet``) is the user's input, not a study file.
PARQUET_OWNERS = {"benchmark.study_files", "benchmark.predictions"}


def _calls_parquet(path: Path) -> bool:
    """Whether a module reads or writes parquet itself: pandas' ``read_parquet``/``to_parquet`` (as a method or
    imported by name), or any use of ``pyarrow.parquet``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("read_parquet", "to_parquet"):
            return True
        if isinstance(node, ast.Import) and any(a.name == "pyarrow.parquet" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (
                node.module == "pyarrow.parquet"
                or (node.module == "pyarrow" and any(a.name == "parquet" for a in node.names))
                or (node.module == "pandas" and any(a.name == "read_parquet" for a in node.names))):
            return True
    return False


def test_the_parquet_detector_sees_each_way_in(tmp_path: Path) -> None:
    cases = {"import pyarrow.parquet as pq\n": True, "from pyarrow import parquet\n": True,
             "from pyarrow.parquet import ParquetWriter\n": True, "from pandas import read_parquet\n": True,
             "def f(pd):\n    return pd.read_parquet('x')\n": True, "def f(df):\n    df.to_parquet('x')\n": True,
             "import pyarrow.feather\nimport pandas as pd\n": False}
    found = {}
    for i, (source, _) in enumerate(cases.items()):
        (tmp_path / f"m{i}.py").write_text(source, encoding="utf-8")
        found[source] = _calls_parquet(tmp_path / f"m{i}.py")
    assert found == cases


def test_at_most_two_modules_read_or_write_parquet() -> None:
    callers = sorted(name for name, path in _modules().items() if _calls_parquet(path))
    assert len(callers) <= 2 and set(callers) <= PARQUET_OWNERS, (
        f"{callers}: read and write the study's parquet files through benchmark.study_files")
