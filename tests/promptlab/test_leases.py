"""Leases renewed while their work is in flight (promptlab.leases): the process's heartbeat thread."""

import time

import pytest

from experiments.models import Run
from promptlab import leases
from tests.factories import RunFactory

# The heartbeat uses its own database connection, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = "2000-01-01T00:00Z"


@pytest.fixture(autouse=True)
def short_lease(settings):
    settings.LLM_CALL_LEASE_SECONDS = 1  # renewed every third of a second


def lease_of(run):
    return Run.objects.values_list("lease_until", flat=True).get(pk=run.pk)


def claimed(run):
    return leases.claim(Run.objects.filter(pk=run.pk))


def wait_renewed(run, what: str):
    """Until the heartbeat has moved the run's lease on (a hang guard, not a timing)."""
    before = lease_of(run)
    deadline = time.monotonic() + 30
    while lease_of(run) == before:
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_held_claim_is_renewed_until_its_block_exits():
    run, probe = RunFactory(status="pending"), RunFactory(status="pending")
    with leases.held(claimed(run)):
        wait_renewed(run, "the lease of a claim in flight was not renewed")
        wait_renewed(run, "the lease was renewed only once")

    with leases.held(claimed(probe)):  # each round of the heartbeat renews the probe
        wait_renewed(probe, "the heartbeat stopped")
        released = lease_of(run)  # a renewal under way as the block exited is written by now
        wait_renewed(probe, "the heartbeat stopped")
    assert lease_of(run) == released


def test_a_claim_another_worker_took_over_is_never_renewed():
    run, probe = RunFactory(status="pending"), RunFactory(status="pending")
    with leases.held(claimed(run)):
        Run.objects.filter(pk=run.pk).update(claims=2, lease_until=LONG_AGO)  # this process stalled; another claimed it
        with leases.held(claimed(probe)):
            wait_renewed(probe, "the heartbeat stopped")
            wait_renewed(probe, "the heartbeat stopped")
        assert lease_of(run).year == 2000
    assert Run.objects.get(pk=run.pk).claims == 2


def test_a_claim_is_won_once_and_only_from_pending_or_a_lease_that_ran_out():
    run = RunFactory(status="pending")

    first = claimed(run)
    assert first is not None and claimed(run) is None  # a live claim is not taken
    assert Run.objects.get(pk=run.pk).status == "running"

    Run.objects.filter(pk=run.pk).update(lease_until=LONG_AGO)  # its worker died
    second = claimed(run)
    assert second is not None and Run.objects.get(pk=run.pk).claims == 2
    assert not first.exists() and second.exists()  # the dead worker's claim selects nothing any more

    Run.objects.filter(pk=run.pk).update(status="done", lease_until=None)
    assert claimed(run) is None
