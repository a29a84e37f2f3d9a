"""The layout's rules, checked on the source (shared/DESIGN.md, "Layout"): the product never
imports the sandbox and the sandbox only the database contract; domains do not import each
other; the platform imports no domain; packages form no import cycle. (That the receiver loads
no Dagster is checked by running it: `webhooks/test_import_contract.py`.)"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import sunny_pipelines

PACKAGE_ROOT = Path(sunny_pipelines.__file__).parent
DOMAINS = {"calendar", "drive", "gmail", "meetings", "ai", "accounts", "housekeeping", "health"}
PLATFORM = {
    "per_user",
    "partitions",
    "vocabulary",
    "db",
    "resources",
    "inbox",
    "webhooks",
    "frontend_api",
    "pools",
}


def _unit(module: str) -> str:
    """The top-level unit of ``sunny_pipelines.x.y``: ``x``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> dict[str, set[str]]:
    """Every product module (dotted name) -> the sunny_pipelines modules it imports."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                targets.add(target)
                targets.update(f"{target}.{alias.name}" for alias in node.names)
        found[module] = {t for t in targets if t.startswith("sunny_pipelines.") or t == "sunny_pipelines"}
    return found


IMPORTS = _imports()


def _units_imported(module: str) -> set[str]:
    return {_unit(t) for t in IMPORTS[module]} - {"", _unit(module)}


def test_the_scan_sees_the_code_location():
    assert "sunny_pipelines.definitions" in IMPORTS
    assert "calendar" in _units_imported("sunny_pipelines.definitions")


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if _unit(m) != "sandbox"))
def test_product_code_never_imports_the_sandbox(module):
    assert "sandbox" not in _units_imported(module)


def test_the_sandbox_imports_only_the_database_contract_of_the_product():
    used = set().union(*(_units_imported(m) for m in IMPORTS if _unit(m) == "sandbox"))
    assert used <= {"db", "vocabulary"}, used


def test_domains_do_not_import_each_other():
    crossings = {
        (module, unit)
        for module in IMPORTS
        if _unit(module) in DOMAINS
        for unit in _units_imported(module) & DOMAINS
    }
    assert crossings == set()


def test_the_platform_imports_no_domain():
    crossings = {
        (module, unit)
        for module in IMPORTS
        if _unit(module) in PLATFORM
        for unit in _units_imported(module) & DOMAINS
    }
    assert crossings == set()


def test_packages_form_no_import_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module in IMPORTS:
        graph[_unit(module)] |= _units_imported(module)
    visiting, done = set(), set()

    def visit(unit: str, path: list[str]) -> None:
        if unit in done:
            return
        assert unit not in visiting, f"import cycle: {' -> '.join(path + [unit])}"
        visiting.add(unit)
        for nxt in sorted(graph.get(unit, ())):
            visit(nxt, path + [unit])
        visiting.discard(unit)
        done.add(unit)

    for unit in sorted(graph):
        visit(unit, [])
