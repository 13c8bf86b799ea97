"""The safety net: the life cycle failed (a bug), and the PID-1 promise must still hold.

With as little of the life cycle's code as possible: wait for a stop signal or the child's
exit; forward the stop signal, wait the grace period, SIGKILL; run the post hooks if they
have not run; exit with the child's status. Further stop signals act as everywhere else
(lifecycle.STOP_SIGNAL_TABLE): the same escalation, so a second stop signal forwards again
and a third SIGKILLs even here. Imported only after a bug.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import List

    from graceinit.config import Argv
    from graceinit.lifecycle import Lifecycle
    from graceinit.waits import Steps

from graceinit import hooks
from graceinit.config import signal_name
from graceinit.hooks import show
from graceinit.lifecycle import INTERNAL_ERROR, StopSignalsAgain, grace_escalation
from graceinit.log import INFO, WARNING
from graceinit.terminate import Children, terminate
from graceinit.waits import Wait


def fallback(life: Lifecycle) -> Steps[int]:
    """Forward, grace period, SIGKILL; post hooks where they can still run; the child's status."""
    config, facts, generations, system = life.config, life.facts, life.generations, life.system
    if generations.running() and facts.stop is None:
        yield Wait(lambda: facts.stop is not None or not generations.running())
    if generations.running() and facts.stop is not None:
        grace = config.grace_period
        deadline = life.budget.cap(None if grace is None else system.now() + grace, facts.stop.at)
        signum = life.rewritten(facts.stop.signum)
        life.report.emit(INFO, "stop_forwarded", f"sending {signal_name(signum or 0)} to the child",
                         signal=signal_name(signum or 0))
        targets = Children(system, generations.running, not config.single_child)
        escalation = grace_escalation(facts, life.rewritten)
        yield from terminate(system.now, targets, signum, deadline, escalation, life.killing_children)
    if not life.post_hooks_started:
        try:
            post: List[Argv] = life.hook_commands(config.post_hooks)
        except Exception:
            post = []
        code = life.exit_code()
        for argv in post:
            try:
                environ = hooks.environ_for(life.environ, "post", None, exit_code=code)
                hook = system.spawn_hook(argv, environ)
            except Exception as error:
                life.report.emit(WARNING, "hook_failed", f"post hook {show(argv)}: {error}")
                continue
            facts.children[hook.pid] = hook
            deadline = None if config.hook_timeout is None else system.now() + config.hook_timeout
            escalation = StopSignalsAgain(facts, facts.stop_count)
            yield from terminate(system.now, Children(system, lambda: [hook]), None, deadline, escalation)
    if generations.current is None and life.status_without_child is None:
        return INTERNAL_ERROR
    return life.exit_code()
