"""The package's import graph follows the data: no cycles, and no module imports a layer above it.

Layers, lowest first: the leaf modules every stage may use (errors, paths, progress, schema
messages, presets); data and the simulator; model; train; evaluate; report; then what wires
the stages together (config validation, the stages' files, runs that start from runs, sweeps,
inspecting a file against the presets) and the command line. A module may import its own layer and those below it,
never one above: a stage never reaches into a later stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rdtflow"
LAYERS = [
    {"rdtflow.errors", "rdtflow.paths", "rdtflow.progress", "rdtflow.schema_messages", "rdtflow.presets",
     "rdtflow.machine"},
    {"rdtflow.data", "rdtflow.sim"},
    {"rdtflow.model"},
    {"rdtflow.train"},
    {"rdtflow.evaluate"},
    {"rdtflow.report"},
    {"rdtflow.config", "rdtflow.stages", "rdtflow.pretraining", "rdtflow.sweep", "rdtflow.inspection"},
    {"rdtflow.cli"},
]


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """Every rdtflow module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rdtflow"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("rdtflow")}
    return found


def layer(module: str) -> int:
    if module == "rdtflow":  # the package itself: its public API (rdtflow.load_policy) sits above every stage
        return len(LAYERS)
    for index, members in enumerate(LAYERS):
        if any(module == member or module.startswith(member + ".") for member in members):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


GRAPH = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_layer_above_it():
    upward = [f"{module} -> {target}" for module, targets in GRAPH.items() for target in targets
              if layer(target) > layer(module)]
    assert not upward


def test_the_import_graph_has_no_cycle():
    def cycle_from(module: str, stack: list[str]) -> list[str] | None:
        if module in stack:
            return stack[stack.index(module):] + [module]
        for target in GRAPH.get(module, ()):
            found = cycle_from(target, [*stack, module])
            if found:
                return found
        return None

    cycles = [cycle for module in GRAPH if (cycle := cycle_from(module, []))]
    assert not cycles, cycles[0]
