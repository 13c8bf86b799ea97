"""The layout's rules (README, "Layout"), checked on the code itself.

The core (the loop, the life cycle and its steps) reaches the operating system only through
`System` (system.py): no OS module, no module of graceinit's that does I/O, so that unit
tests replay every history against the fake system (tests/helpers/fakes.py).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Set

import pytest

from graceinit.system import System
from helpers.fakes import FakeSystem

PACKAGE = Path(__file__).resolve().parents[2] / "graceinit"
CORE = ("supervisor", "lifecycle", "stopdelay", "fallback", "generations", "hooks", "terminate",
        "facts", "events", "waits", "budget", "drain", "rhythm", "ledger", "proc")
# What the core may import: its own modules, the configuration, the log levels and reporter
# (the seam for what graceinit says), pure standard modules, and `_signal` for numbers only.
ALLOWED = set(CORE) | {"config", "log", "report", "__future__", "typing", "_signal", "shlex",
                       "traceback", "math", "bisect", "heapq", "collections", "ipaddress"}


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue  # annotations only: nothing is imported at run time
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == "graceinit":
                yield from (alias.name for alias in node.names)
            else:
                yield module
        else:
            yield from _imports(node)


@pytest.mark.parametrize("name", CORE)
def test_the_core_reaches_the_os_only_through_system(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    used: Set[str] = {module.removeprefix("graceinit.").split(".")[0] for module in _imports(tree)}
    assert used <= ALLOWED, f"graceinit/{name}.py imports {sorted(used - ALLOWED)}"


def test_the_fake_system_is_a_whole_system() -> None:
    wanted = {name for name in vars(System) if not name.startswith("_")}
    missing = {name for name in wanted if not callable(getattr(FakeSystem, name, None))}
    assert not missing, f"FakeSystem lacks {sorted(missing)}"
