"""The host state machine: explicit moves only, and nothing ever unprovisions a host."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.rules.host_state import (
    NEEDS_CAUSE, TERMINAL, TRANSITIONS, Cause, IllegalTransition, Status, check_transition,
    counts_toward_failure_limit,
)


def test_the_documented_path_is_legal():
    path = [("pending", "failed", "suffix_mismatch"), ("failed", "remediating", None),
            ("remediating", "remediated", None), ("remediated", "provisioned", None)]
    for cur, new, cause in path:
        check_transition(cur, new, cause)


@pytest.mark.parametrize("cur,new", [("provisioned", "failed"), ("provisioned", "pending"), ("unsupported", "remediating"),
                                     ("pending", "remediated"), ("failed", "remediated"), ("remediating", "provisioned")])
def test_illegal_moves_raise(cur, new):
    with pytest.raises(IllegalTransition):
        check_transition(cur, new, "unknown")


def test_failure_statuses_need_a_cause():
    with pytest.raises(IllegalTransition):
        check_transition("pending", "failed")


def test_suffix_failures_do_not_count_toward_max_fail_percentage():
    assert not counts_toward_failure_limit("failed", "suffix_mismatch")
    assert not counts_toward_failure_limit("failed", "suffix_blank")
    assert counts_toward_failure_limit("failed", "unreachable")
    assert not counts_toward_failure_limit("provisioned", None)


@given(st.lists(st.tuples(st.sampled_from(list(Status)), st.sampled_from([None, *Cause])), max_size=40))
def test_no_event_sequence_reaches_an_illegal_state_or_unprovisions(events):
    """Apply random requested moves; the guard must keep the host on legal edges only."""
    status = Status.PENDING
    for new, cause in events:
        try:
            check_transition(status, new, cause)
        except IllegalTransition:
            continue
        assert new in TRANSITIONS[status]
        assert not (new in NEEDS_CAUSE and cause is None)
        assert status not in TERMINAL  # nothing leaves provisioned/unsupported
        status = new
