"""The evaluation package's imports form a one-way graph: no cycles, nothing imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.corpus import REPO_ROOT

PACKAGE = REPO_ROOT / "qa" / "evaluation"


def _imported_modules(path: Path) -> set[str]:
    """Every ``qa.*`` module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qa"):
            found.add(node.module)
            # ``from qa.evaluation import runner`` imports the module qa.evaluation.runner
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("qa"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"qa.evaluation.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imported_modules(path) & set(modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    # The finder itself, on hand-made graphs: a -> b -> c -> a is a cycle; a -> b, a -> c, b -> c is not.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_evaluation_imports_are_acyclic():
    graph = _graph()
    assert {"qa.evaluation.runner", "qa.evaluation.report", "qa.evaluation.benchmarks"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_evaluation_does_not_import_the_command_line():
    for path in PACKAGE.glob("*.py"):
        upward = {m for m in _imported_modules(path) if m.startswith(("qa.cli", "qa.app"))}
        assert not upward, f"{path.name} imports {sorted(upward)}"
        assert "argparse" not in path.read_text(encoding="utf-8"), f"{path.name} still parses arguments"


def test_the_cli_registers_qa_eval_from_qa_cli_evaluate():
    from qa.cli.common import Parser
    from qa.cli.evaluate import register

    parser = Parser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "beir", "--data", "somewhere"])
    assert args.evaluation == "beir" and callable(args.func)
