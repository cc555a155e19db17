"""The package's floors (ARCHITECTURE.md): a module imports only from its own room or rooms below it,
function-level imports included, so data flows one way and no import circle can form."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Bottom to top: each room may import the rooms listed before it (and itself).
FLOORS = ["errors", "data", "methods", "kernel", "spec", "sequence", "design", "validate", "stats", "store", "clusters",
          "sweep", "analysis", "reporting", "pipeline", "cli"]


def _room(module: str) -> str | None:
    """The room of a module path relative to engine/ ('sweep.core' -> 'sweep'); None for the package root."""
    head = module.split(".")[0]
    return None if head in ("", "__init__") else head


def _imports(path: Path) -> list[tuple[str, int]]:
    """(engine-relative module, line) of every import of an engine module in ``path``."""
    rel = path.relative_to(ENGINE).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
                names = [f"{target}.{a.name}" if target else a.name for a in node.names]
                out.extend((t, node.lineno) for t in ([target] if target else names))
            elif node.module and node.module.startswith("engine"):
                out.append((node.module.removeprefix("engine").lstrip("."), node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name.removeprefix("engine").lstrip("."), node.lineno) for a in node.names
                       if a.name.startswith("engine."))
    return out


def test_every_room_has_a_floor():
    rooms = {p.stem if p.is_file() else p.name for p in ENGINE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem != "__init__"}
    assert rooms <= set(FLOORS), f"rooms without a floor in ARCHITECTURE.md: {sorted(rooms - set(FLOORS))}"


def test_no_module_imports_a_higher_floor():
    wrong = []
    for path in ENGINE.rglob("*.py"):
        if "datasets" in path.relative_to(ENGINE).parts:
            continue
        here = _room(".".join(path.relative_to(ENGINE).with_suffix("").parts))
        if here is None:  # engine/__init__.py: the public API sits above everything
            continue
        for target, line in _imports(path):
            room = _room(target)
            if room is None or room not in FLOORS:
                continue
            if FLOORS.index(room) > FLOORS.index(here):
                wrong.append(f"{path.relative_to(ENGINE.parent)}:{line} ({here}) imports {room}")
    assert not wrong, "imports of a higher floor:\n" + "\n".join(wrong)
