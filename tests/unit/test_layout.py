"""The package layout: the product apart from its test bench, no import circles, the README's map true."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"docpost": ROOT / "plugins" / "docpost", "docpost_testbench": ROOT / "testbench" / "docpost_testbench"}
#: Never imported by importing the product: the bench and the bench's own dependencies.
BENCH_ONLY = ("docpost_testbench", "moto", "aiosmtpd", "uvicorn.server", "werkzeug", "pytest")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # a module or a name in one
    return names


def test_importing_every_product_module_loads_no_bench_module():
    script = (
        "import importlib, json, pkgutil, sys, docpost\n"
        "for info in pkgutil.walk_packages(docpost.__path__, 'docpost.'):\n"
        "    if not info.name.startswith('docpost.migrations.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "docpost.pipeline" in loaded and "docpost.ledger.repository" in loaded  # the walk did import
    bench = [m for m in loaded if m.startswith(BENCH_ONLY)]
    assert bench == []


def test_no_product_module_names_the_bench():
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for module, path in _modules().items() if module.split(".")[0] == "docpost"
        for name in _imports(path) if name.split(".")[0] in {"docpost_testbench", "moto", "aiosmtpd"}
    )
    assert offenders == []


def test_no_import_circles():
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {m: {o for n in _imports(p) if (o := owner(n)) and o != m} for m, p in modules.items()}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert len(graph) > 60  # both packages were read
    assert cycles == []


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-\[\],]+)==(\S+)", line):
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return pins


def test_production_lock_is_the_full_lock_without_the_bench():
    full = _pins(ROOT / "requirements.lock")
    production = _pins(ROOT / "docker" / "requirements.lock")
    assert {"apache-airflow", "lxml", "reportlab"} <= set(production)
    assert {name: v for name, v in production.items() if full.get(name) != v} == {}
    assert sorted({"moto", "aiosmtpd", "pytest"} & set(production)) == []
    assert {"moto", "aiosmtpd", "pytest"} <= set(full)


def test_readme_layout_names_every_module_and_only_what_exists():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Layout\n.*?```\n(.*?)```", text, re.S).group(1)
    named, missing, folder = set(), [], ROOT
    for line in block.splitlines():
        first_column = re.split(r"\s{2,}", line.strip())[0]
        base = folder if line.startswith(" ") else ROOT
        for name in first_column.split():
            path = base / name
            if not line.startswith(" ") and name.endswith("/"):
                folder = path
            (named.add(path.resolve()) if path.exists() else missing.append(name))
    modules = {  # each package's top-level modules and sub-packages
        p.resolve() for f in PACKAGES.values() for p in f.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    }
    assert sorted(str(m.relative_to(ROOT)) for m in modules - named) == []
    assert missing == []
