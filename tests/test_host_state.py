"""The host state machine: explicit moves only, and nothing ever unprovisions a host."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import itertools
import re
from pathlib import Path

from tasks.rules.host_state import Cause, IllegalTransition, Status, check_transition, counts_toward_failure_limit

README = Path(__file__).resolve().parent.parent / "README.md"


def _documented_edges() -> set[tuple[str, str]]:
    """The edges README promises operators ("Statuses move only along these edges"), read from its text:
    an independent statement of the state machine, not the code's own table."""
    text = README.read_text()
    block = text[text.index("Statuses move only along these edges"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    edges = set()
    for line in block.strip().splitlines():
        if "->" not in line:
            continue
        left, right = line.split("->")
        for a, b in itertools.product(re.findall(r"[a-z_]+", left), re.findall(r"[a-z_]+(?=\(|\s|$|\|)", right)):
            edges.add((a, b))
    return edges


def _allowed(cur: Status, new: Status) -> bool:
    try:
        check_transition(cur, new, Cause.UNKNOWN)
    except IllegalTransition:
        return False
    return True


def test_the_code_allows_exactly_the_edges_readme_documents():
    documented = _documented_edges()
    assert ("pending", "failed") in documented and ("remediating", "needs_mebx") in documented  # the parse worked
    allowed = {(a.value, b.value) for a in Status for b in Status if _allowed(a, b)}
    assert allowed == documented


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


FAILURE_STATUSES = {"failed", "needs_mebx", "remediation_failed", "unsupported"}  # README: failed(cause)


@given(st.lists(st.tuples(st.sampled_from(list(Status)), st.sampled_from([None, *Cause])), max_size=40))
def test_no_event_sequence_unprovisions_or_records_a_failure_without_a_cause(events):
    """Apply random requested moves: once provisioned or unsupported, nothing moves the host; a failure
    status is never entered without a cause."""
    status = Status.PENDING
    for new, cause in events:
        try:
            check_transition(status, new, cause)
        except IllegalTransition:
            continue
        assert status.value not in ("provisioned", "unsupported")
        assert not (new.value in FAILURE_STATUSES and cause is None)
        status = new
