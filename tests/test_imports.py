"""Imports point one way: no cycles between Group Admin's modules, and none dodged by an import
inside a function. The rule book alone decides the two-person rule."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "groups_app"
PROJECT = ("groups_app", "sandbox", "dashboard")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def imported_modules(node: ast.AST, known: set[str]) -> list[str]:
    """The project modules an import statement loads (`from a.b import c` is a.b.c when c is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith(PROJECT)]
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PROJECT):
        names = [f"{node.module}.{alias.name}" for alias in node.names]
        return [name if name in known else node.module for name in names]
    return []


def is_app_ready(function: ast.AST, path: Path) -> bool:
    """Django's documented place for imports at start-up: AppConfig.ready in apps.py."""
    return path.name == "apps.py" and getattr(function, "name", "") == "ready"


def graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = sources()
    known = set(modules)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    nested: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            for target in imported_modules(node, known):
                if target.startswith("groups_app") and target != name:
                    edges[name].add(target)
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports still point somewhere
                for inner in ast.walk(node):
                    edges[name].update(
                        t for t in imported_modules(inner, known) if t.startswith("groups_app")
                    )
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or is_app_ready(
                function, path
            ):
                continue
            for inner in ast.walk(function):
                if imported_modules(inner, known):
                    nested.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return edges, nested


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_modules_import_each_other_without_cycles():
    edges, _ = graph()

    assert cycles(edges) == []


def test_no_project_module_is_imported_inside_a_function():
    _, nested = graph()

    assert nested == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_change_services_never_reach_up_to_the_approvals_or_the_tasks():
    edges, _ = graph()
    lower = [name for name in edges if name.startswith("groups_app.services.") and ".approvals" not in name]

    reaching_up = {
        name: sorted(t for t in edges[name] if ".approvals" in t or t == "groups_app.tasks")
        for name in lower
        if name != "groups_app.services.people"  # a door: it may file for approval
    }

    assert {name: targets for name, targets in reaching_up.items() if targets} == {}


def test_the_two_person_rule_is_decided_in_the_rule_book_alone():
    deciding = [
        str(path.relative_to(ROOT)) for path in sources().values() if "TWO_PERSON_RULE" in path.read_text()
    ]

    assert deciding == ["groups_app/rules/book.py"]
