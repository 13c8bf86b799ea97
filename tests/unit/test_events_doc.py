"""The event table of docs/events.md lists every event the code can emit, and nothing else
(issue 19 item 6). Event names are an interface for log pipelines, so a new event without a
row, or a row left behind by a removed event, fails here.

The code side is read statically (ast) from graceinit/*.py, so an event on a path no test
reaches is still seen:

* the event-name argument of `emit(level, event, ...)`, `_say(...)`, `say(...)` and
  `_render(level, event, ...)` calls;
* the `event=` keyword of `log.error/warning/info/debug/exception(...)`, or, without one, that
  function's default (`"warning"` for `log.warning`), so an unnamed message also shows up.

An event name must be a string literal. A variable is accepted only where a function passes its
own parameter on (report.emit -> log.emit); anything else (an f-string, a computed name) fails,
because the table could not be checked against it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "graceinit"
EVENTS_DOC = REPO / "docs" / "events.md"

POSITIONAL = {"emit": 1, "_say": 1, "say": 1, "_render": 1}   # call name -> index of the event argument
LOG_HELPERS = ("error", "warning", "info", "debug", "exception")


def log_defaults() -> Dict[str, str]:
    """The `event` default of each helper in log.py (log.warning(...) -> "warning")."""
    defaults: Dict[str, str] = {}
    for node in ast.parse((PACKAGE / "log.py").read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name in LOG_HELPERS:
            names = [arg.arg for arg in node.args.args]
            values = node.args.defaults
            for name, value in zip(names[len(names) - len(values):], values):
                if name == "event" and isinstance(value, ast.Constant):
                    defaults[node.name] = value.value
    assert set(defaults) == set(LOG_HELPERS), defaults
    return defaults


def call_name(call: ast.Call) -> Tuple[str, str]:
    """(what the call is made on, the function's name): ("log", "warning"), ("", "emit")."""
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return owner, func.attr
    if isinstance(func, ast.Name):
        return "", func.id
    return "", ""


class Scan(ast.NodeVisitor):
    def __init__(self, source: str, defaults: Dict[str, str]) -> None:
        self.source, self.defaults = source, defaults
        self.events: Set[str] = set()
        self.problems: List[str] = []
        self.parameters: List[Set[str]] = [set()]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        arguments = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
        self.parameters.append({arg.arg for arg in arguments})
        self.generic_visit(node)
        self.parameters.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        owner, name = call_name(node)
        argument = None
        if name in POSITIONAL and len(node.args) > POSITIONAL[name]:
            argument = node.args[POSITIONAL[name]]
        elif owner == "log" and name in LOG_HELPERS:
            keyword = [k.value for k in node.keywords if k.arg == "event"]
            if keyword:
                argument = keyword[0]
            else:
                self.events.add(self.defaults[name])
        if argument is not None:
            self.take(argument, node)
        self.generic_visit(node)

    def take(self, argument: ast.expr, call: ast.Call) -> None:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            self.events.add(argument.value)
        elif isinstance(argument, ast.Name) and argument.id in self.parameters[-1]:
            pass  # a forwarder: its callers are scanned
        else:
            self.problems.append(f"{self.source}:{call.lineno}: an event name that is not a literal:"
                                 f" {ast.unparse(argument) if hasattr(ast, 'unparse') else argument}")


def emitted_events() -> Set[str]:
    defaults = log_defaults()
    events: Set[str] = set()
    problems: List[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        scan = Scan(path.name, defaults)
        scan.visit(ast.parse(path.read_text()))
        events |= scan.events
        problems += scan.problems
    assert not problems, "\n".join(problems)
    return events


def documented_events(text: str) -> Set[str]:
    """The names in the first cell of each row of the table headed `| event | level | ...`."""
    table = re.search(r"^\| event \| level \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", text, re.MULTILINE)
    assert table, f"{EVENTS_DOC}: no event table"
    names: Set[str] = set()
    for row in table.group(1).splitlines():
        first_cell = row.split("|")[1]
        found = re.findall(r"`([a-z_]+)`", first_cell)
        assert found, f"a row without an event name: {row}"
        names.update(found)
    return names


def test_the_scan_sees_events_of_every_kind() -> None:
    """Guards the scanner: if it stopped recognising a call form, the comparison below would
    compare less than it seems."""
    events = emitted_events()
    assert {"child_started", "termination_report", "stop_delay_ended",    # Lifecycle._say, StopDelay._say
            "hook_started", "child_suspended", "internal_error",           # report.emit, self._report.emit
            "usage_error", "unknown_variable", "log_dropped"} <= events     # log.error(event=), log._render


def test_every_event_the_code_emits_is_in_the_table() -> None:
    missing = emitted_events() - documented_events(EVENTS_DOC.read_text())
    assert not missing, f"events the code emits that docs/events.md does not list: {sorted(missing)}"


def test_every_event_in_the_table_is_emitted_by_the_code() -> None:
    stale = documented_events(EVENTS_DOC.read_text()) - emitted_events()
    assert not stale, f"events docs/events.md lists that no code emits: {sorted(stale)}"


def test_a_name_that_is_not_a_literal_is_refused() -> None:
    scan = Scan("example.py", log_defaults())
    scan.visit(ast.parse('def f(report, flag):\n    report.emit(1, f"child_{flag}", "m")\n'))
    assert scan.problems and not scan.events
    scan = Scan("example.py", log_defaults())
    scan.visit(ast.parse('def f(level, event, msg):\n    log.emit(level, event, msg)\n'
                         'def g():\n    log.warning("m")\n    log.info("m", event="listening")\n'))
    assert not scan.problems and scan.events == {"warning", "listening"}
