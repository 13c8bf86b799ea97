"""The ledger (issue 16): the namespace's TCP counters, replayed as recorded histories through
the stop's phases with the fake system, become the termination report's loss fields and at
most one warning line."""

from __future__ import annotations

import signal
from typing import Any, Dict, List, Tuple

import pytest

from graceinit.config import Hooks
from graceinit.events import Exited, Signal
from graceinit.ledger import Context, summary, warning
from graceinit.log import WARNING
from graceinit.report import termination_message
from helpers.fakes import Behaviour, FakeSystem, cfg, exited, run

TERM, KILL = signal.SIGTERM, signal.SIGKILL
RSTS, ON_CLOSE, ON_DATA, DROPS = ("Tcp:OutRsts", "TcpExt:TCPAbortOnClose", "TcpExt:TCPAbortOnData",
                                  "TcpExt:ListenDrops")


def pod(**behaviour: Any) -> FakeSystem:
    """The app exits 0.5 s after SIGTERM; the post hook takes 1 s (the after-exit phase);
    the stop signal comes at t=1."""
    system = FakeSystem({"app": Behaviour(**(behaviour or {"on_signal": {TERM: 0.5}})),
                         "post": Behaviour(runs=1.0)})
    system.at(1.0, Signal(TERM))
    return system


def stop(system: FakeSystem, **config: Any) -> Tuple[Dict[str, Any], List[Tuple[str, Dict[str, Any]]]]:
    """Run the life; the termination report's fields, and the warnings on the way."""
    config.setdefault("post_hooks", Hooks(commands=(("post",),)))
    run(cfg(**config), system)
    [fields] = system.report.named("termination_report")
    warnings = [(msg, f) for level, name, msg, f in system.report.events if level == WARNING and name == "losses"]
    return fields, warnings


# With --stop-delay 2: the stop delay is 1..3, the grace period 3..3.5, after the exit 3.5..4.5.


def test_a_clean_stop_says_none_in_one_word_and_warns_not():
    fields, warnings = stop(pod(), stop_delay=2.0)
    assert fields["losses"] == "none"
    assert (fields["refused"], fields["aborted"], fields["dropped"], fields["open_at_sigkill"]) == (0, 0, 0, 0)
    assert warnings == []
    assert termination_message(fields).endswith("; losses: none")


def test_each_loss_lands_in_the_phase_it_happened_in():
    system = pod()
    system.rise(2.0, DROPS, 2)  # during the stop delay
    system.rise(3.2, RSTS, 12)  # after the forward: the app closed its listener
    system.rise(4.0, RSTS, 29)  # after the app's exit
    fields, _ = stop(system, stop_delay=2.0)
    assert fields["losses_by_phase"] == {
        "stop_delay": {"refused": 0, "aborted": 0, "dropped": 2},
        "grace": {"refused": 12, "aborted": 0, "dropped": 0},
        "after_exit": {"refused": 29, "aborted": 0, "dropped": 0},
    }
    assert (fields["refused"], fields["dropped"], fields["losses"]) == (41, 2, "some")


def test_resets_that_an_abort_explains_are_aborted_not_refused():
    system = pod()
    system.rise(3.2, RSTS, 8)  # 5 SYNs refused, 3 connections closed with requests unread
    system.rise(3.2, ON_CLOSE, 2)
    system.rise(3.2, ON_DATA, 1)
    fields, _ = stop(system, stop_delay=2.0)
    assert fields["losses_by_phase"]["grace"] == {"refused": 5, "aborted": 3, "dropped": 0}


def test_one_warning_line_names_every_loss_and_its_cause():
    system = pod()
    system.rise(3.2, RSTS, 12)
    system.rise(4.0, RSTS, 29)
    system.rise(3.3, RSTS, 3)
    system.rise(3.3, ON_CLOSE, 3)
    fields, warnings = stop(system, stop_delay=2.0)
    [(message, warned)] = warnings
    assert message == (
        "41 connection(s) refused after the app closed its listener (12 during the grace period, 29 after"
        " the app's exit): the stop delay ended before traffic stopped (ended: elapsed at 2 s): lengthen it or"
        " use --stop-delay auto; 3 connection(s) aborted during the grace period: the app closed connections"
        " with requests unread or unanswered (it does not finish in-flight requests), or clients reset theirs")
    assert warned["refused"] == 41 and warned["aborted"] == 3
    assert "losses: refused 41 (12 during the grace period, 29 after the app's exit), aborted 3 (during" \
        " the grace period), dropped 0, open at SIGKILL 0" in termination_message(fields)


def test_without_a_stop_delay_the_warning_says_to_set_one():
    system = pod()
    system.rise(1.2, RSTS, 7)
    fields, [(message, _)] = stop(system)
    assert fields["losses_by_phase"]["grace"]["refused"] == 7
    assert message == ("7 connection(s) refused after the app closed its listener: there was no stop delay:"
                       " set --stop-delay (or --stop-delay auto)")


def test_the_cause_of_an_auto_delay_that_ended_too_soon_names_how_it_ended():
    fields = {"losses_by_phase": {"stop_delay": {"refused": 0, "aborted": 0, "dropped": 0},
                                  "grace": {"refused": 41, "aborted": 0, "dropped": 0},
                                  "after_exit": {"refused": 0, "aborted": 0, "dropped": 0}},
              "open_at_sigkill": 0}
    message = warning(fields, Context(0.8, "quiet", True), None)
    assert message == ("41 connection(s) refused after the app closed its listener: the stop delay ended"
                       " before traffic stopped (ended: quiet at 0.8 s)")


def test_connections_open_at_sigkill_are_counted_once():
    system = pod(on_signal={})  # ignores SIGTERM: SIGKILLed at 3 + 1
    system.in_flight = (12, 2)  # 2 of them with their request unread: the kernel resets those
    system.rise(4.0, RSTS, 2)
    system.rise(4.0, ON_CLOSE, 2)
    fields, [(message, _)] = stop(system, stop_delay=2.0, grace_period=1.0)
    assert fields["open_at_sigkill"] == 12
    assert fields["losses_by_phase"]["grace"] == {"refused": 0, "aborted": 0, "dropped": 0}
    assert message == "12 connection(s) open at SIGKILL with a request in flight: raise --grace-period"
    assert system.actions("open_connections") == [(4.0, None)]


def test_a_third_stop_signal_is_named_as_the_sigkill_s_cause():
    system = pod(on_signal={})
    system.at(1.5, Signal(TERM))
    system.at(1.6, Signal(TERM))
    system.in_flight = (3, 0)
    fields, [(message, _)] = stop(system, stop_delay=2.0)
    assert fields["open_at_sigkill"] == 3
    assert message == "3 connection(s) open at SIGKILL with a request in flight: a third stop signal"


def test_the_counters_are_read_at_the_boundaries_only_never_before_the_stop_signal():
    system = pod()
    system.at(0.5, Signal(signal.SIGHUP))  # an ordinary signal: forwarded, nothing read
    stop(system, stop_delay=2.0)
    assert [at for at, _ in system.actions("net_counters")] == [1.0, 3.0, 3.5, 4.5]
    # whose namespace it is: asked at the end, off the forward's path
    assert [at for at, _ in system.actions("foreign_listeners")] == [4.5]


def test_a_child_that_exits_by_itself_reads_nothing():
    system = FakeSystem({"app": Behaviour(runs=2.0)})
    run(cfg(), system)
    assert system.actions("net_counters") == [] and system.actions("foreign_listeners") == []


def test_an_app_that_exits_during_the_stop_delay_has_an_empty_grace_phase():
    system = pod()
    system.at(2.0, Exited(100, exited(0)))
    system.rise(2.5, RSTS, 4)
    fields, [(message, _)] = stop(system, stop_delay=5.0)
    assert fields["losses_by_phase"]["grace"] == {"refused": 0, "aborted": 0, "dropped": 0}
    assert fields["losses_by_phase"]["after_exit"]["refused"] == 4
    assert message.endswith("the app exited on its own during the stop delay (at 1 s)")


def test_a_shared_network_namespace_says_so_instead_of_numbers():
    system = pod()
    system.other_listeners = 3  # hostNetwork: the node's sshd, kubelet, ...
    system.rise(3.2, RSTS, 500)
    fields, warnings = stop(system, stop_delay=2.0)
    assert fields["losses"] == "unknown"
    assert (fields["refused"], fields["aborted"], fields["dropped"], fields["losses_by_phase"]) == (None,) * 4
    assert fields["losses_unknown"].startswith("the network namespace is shared: 3 listening socket(s)")
    assert warnings == []
    assert "losses: unknown (the network namespace is shared: 3 listening socket(s) held by processes outside" \
        " graceinit's tree (hostNetwork, or a sidecar)), open at SIGKILL 0" in termination_message(fields)


def test_in_a_shared_namespace_the_connections_open_at_sigkill_still_count():
    system = pod(on_signal={})
    system.other_listeners = 3
    system.in_flight = (5, 0)
    fields, [(message, _)] = stop(system, stop_delay=2.0, grace_period=1.0)
    assert fields["losses"] == "some" and fields["open_at_sigkill"] == 5 and fields["refused"] is None
    assert message.startswith("5 connection(s) open at SIGKILL")


@pytest.mark.parametrize("when", [1.0, 3.5])
def test_unreadable_counters_say_so_instead_of_numbers(when: float):
    system = pod()
    error = PermissionError(13, "Permission denied", "/proc/net/snmp")
    system.at(when, Signal(signal.SIGWINCH))  # from here on the read fails
    original = system.net_counters

    def counters() -> Dict[str, int]:
        if system.clock >= when:
            raise error
        return original()

    system.net_counters = counters  # type: ignore[assignment]
    fields, warnings = stop(system, stop_delay=2.0)
    assert fields["losses"] == "unknown" and fields["refused"] is None
    assert fields["losses_unknown"] == "the TCP counters are unreadable (/proc/net/snmp: Permission denied)"
    assert warnings == []


def test_listeners_that_cannot_be_listed_leave_the_counters_untrusted_and_the_stop_unchanged():
    system = pod(on_signal={})
    system.listeners_error = OSError(1, "Operation not permitted")
    fields, _ = stop(system, stop_delay=2.0, grace_period=1.0)
    assert fields["losses"] == "unknown" and fields["refused"] is None
    assert "cannot tell whether the network namespace is the app's own (Operation not permitted)" in fields["losses_unknown"]
    assert [(at, what) for at, what in system.actions("send_group")] == [(3.0, ("app", TERM)), (4.0, ("app", KILL))]


def test_a_bug_in_the_reads_costs_the_numbers_not_the_stop():
    system = pod()
    system.net_counters = lambda: {"Tcp:OutRsts": "many"}  # type: ignore[assignment]
    fields, _ = stop(system, stop_delay=2.0)
    assert fields["losses"] == "unknown" and fields["losses_unknown"].startswith("the TCP counters cannot be read")
    assert system.actions("send_group") == [(3.0, ("app", TERM))]


def test_a_stop_before_the_child_started_has_no_ledger():
    system = FakeSystem({"pre": Behaviour(runs=1.0), "app": Behaviour()})
    system.at(0.5, Signal(TERM))
    run(cfg(pre_hooks=Hooks(commands=(("pre",),))), system)
    [fields] = system.report.named("termination_report")
    assert "losses" not in fields and "losses" not in termination_message(fields)
    assert system.actions("net_counters") == []


def test_summary_of_an_unknown_count_at_sigkill():
    fields = {"losses": "unknown", "losses_by_phase": {p: {"refused": 0, "aborted": 0, "dropped": 0}
                                                       for p in ("stop_delay", "grace", "after_exit")},
              "refused": 0, "aborted": 0, "dropped": 0, "open_at_sigkill": None}
    assert summary(fields) == "losses: refused 0, aborted 0, dropped 0, open at SIGKILL unknown"


def test_no_ledger_reads_nothing_and_reports_no_losses():
    system = pod()
    fields, _ = stop(system, stop_delay=2.0, ledger=False)
    assert "losses" not in fields
    assert system.actions("net_counters") == [] and system.actions("foreign_listeners") == []


def test_a_count_at_sigkill_that_fails_says_unknown_and_kills_all_the_same():
    system = pod(on_signal={})

    def broken() -> Tuple[int, int]:
        raise OSError(1, "Operation not permitted")

    system.open_connections = broken  # type: ignore[assignment]
    fields, _ = stop(system, stop_delay=2.0, grace_period=1.0)
    assert fields["open_at_sigkill"] is None and fields["losses"] == "unknown"
    assert "open at SIGKILL unknown" in termination_message(fields)
    assert system.actions("send_group") == [(3.0, ("app", TERM)), (4.0, ("app", KILL))]


def test_drops_and_early_resets_are_named_with_their_phases():
    system = pod()
    system.rise(2.0, DROPS, 5)  # before the forward
    system.rise(4.0, DROPS, 2)  # after the exit
    system.rise(2.0, RSTS, 4)  # refused while the app still served
    system.rise(2.0, ON_DATA, 1)  # and one of those resets an abort
    fields, [(message, _)] = stop(system, stop_delay=2.0)
    assert message == (
        "3 connection(s) refused while the app should still have served: nothing listened on their port"
        " (a stop hook closed it, or clients use a port the app does not serve); 1 connection(s) aborted"
        " before the forward: connections reset while the app still served: the app's or its clients' doing;"
        " 7 SYN(s) dropped at a full accept queue (5 before the forward, 2 after the app's exit): the app"
        " accepted too slowly (clients retry after 1 s or more)")
    assert "dropped 7 (5 before the forward, 2 after the app's exit)" in termination_message(fields)
