"""--termination-budget arithmetic: what the stop sequence may spend, and what it must keep.

Pure: numbers in, numbers out. The kubelet SIGKILLs the whole pod when
terminationGracePeriodSeconds run out, so leftover clean-up and the post hooks must fit
before then: every stop deadline is capped so that they still do.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Optional


class Budget:
    """The budget, and the part of it reserved for after the child has gone."""

    __slots__ = ("seconds", "reserved_after_child")

    def __init__(self, seconds: Optional[float], reserved_after_child: float) -> None:
        self.seconds = seconds  # None: no budget, nothing is capped
        self.reserved_after_child = reserved_after_child  # leftover grace + post hooks x hook timeout

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budget) and (self.seconds, self.reserved_after_child) == (
            other.seconds, other.reserved_after_child)

    def __repr__(self) -> str:
        return f"Budget({self.seconds!r}, {self.reserved_after_child!r})"

    def cap(self, deadline: Optional[float], stopped_at: Optional[float]) -> Optional[float]:
        """`deadline` (None: none), moved earlier if it would eat the reserved time."""
        if self.seconds is None or stopped_at is None:
            return deadline
        latest = stopped_at + self.seconds - self.reserved_after_child
        return latest if deadline is None else min(deadline, latest)


def budget_for(
    seconds: Optional[float], leftover_grace: float, post_hooks: int, hook_timeout: Optional[float]
) -> Budget:
    # An unlimited hook timeout cannot be reserved for: the post hooks then get what is left.
    per_hook = hook_timeout if hook_timeout is not None else 0.0
    return Budget(seconds, leftover_grace + post_hooks * per_hook)


def fit_warning(
    budget: Budget, stop_hooks_s: float, stop_delay: float, grace_period: Optional[float]
) -> Optional[str]:
    """Why the settings cannot all fit in the budget, or None when they do."""
    if budget.seconds is None:
        return None
    fixed = stop_hooks_s + stop_delay + budget.reserved_after_child
    reserved = budget.reserved_after_child
    if grace_period is None:
        if fixed >= budget.seconds:
            return (
                f"--termination-budget {budget.seconds:g}s leaves no grace period: stop hooks"
                f" {stop_hooks_s:g}s + stop delay {stop_delay:g}s + cleanup and post hooks"
                f" {reserved:g}s = {fixed:g}s"
            )
        return None
    if fixed + grace_period > budget.seconds:
        return (
            f"--termination-budget {budget.seconds:g}s is less than stop hooks {stop_hooks_s:g}s"
            f" + stop delay {stop_delay:g}s + grace period {grace_period:g}s + cleanup and post"
            f" hooks {reserved:g}s = {fixed + grace_period:g}s; the grace period will be cut short"
        )
    return None
