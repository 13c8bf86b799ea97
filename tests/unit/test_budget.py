"""--termination-budget arithmetic (pure)."""

from graceinit.budget import Budget, budget_for, fit_warning


def test_reserved_time_is_leftover_grace_plus_post_hooks_times_hook_timeout() -> None:
    assert budget_for(45.0, 5.0, 2, 10.0) == Budget(45.0, 25.0)


def test_unlimited_hook_timeout_reserves_nothing_for_hooks() -> None:
    assert budget_for(45.0, 5.0, 2, None).reserved_after_child == 5.0


def test_cap_moves_a_deadline_earlier_only() -> None:
    budget = Budget(30.0, 12.0)
    assert budget.cap(66.0, stopped_at=1.0) == 19.0
    assert budget.cap(10.0, stopped_at=1.0) == 10.0
    assert budget.cap(None, stopped_at=1.0) == 19.0  # unlimited grace: what the budget leaves


def test_no_budget_caps_nothing() -> None:
    assert Budget(None, 12.0).cap(66.0, 1.0) == 66.0
    assert Budget(None, 12.0).cap(None, 1.0) is None


def test_fit_warning() -> None:
    budget = budget_for(45.0, 5.0, 1, 30.0)
    assert "65s" in (fit_warning(budget, 0.0, 5.0, 25.0) or "")
    assert fit_warning(budget_for(45.0, 5.0, 1, 5.0), 0.0, 5.0, 25.0) is None
    assert "no grace period" in (fit_warning(budget, 0.0, 10.0, None) or "")
