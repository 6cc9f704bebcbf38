"""A loop's stop has a kind, and the exit code follows from the kind, not from its words."""

from study.execution.scheduler import FULL, Stop, StopKind


def test_a_timeout_or_a_full_study_is_not_a_failure():
    assert not FULL.failed and FULL.text == ""
    assert not Stop(StopKind.TIMEOUT, "--timeout 5s reached").failed
    assert not Stop(StopKind.LEFT).failed


def test_failures_are_failures_whatever_their_words():
    for kind in (StopKind.FAILURES, StopKind.CELLS_FAILED, StopKind.WORKER_FAILED):
        assert Stop(kind, "no word of failure here").failed
