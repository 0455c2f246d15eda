"""The Celery round trip with a real worker process: commit -> broker -> worker -> database."""

import pytest
from django.core.management import call_command
from django.db import transaction

from promptlab import workers
from promptlab.errors import Unavailable
from promptlab.models import WorkerPing

pytestmark = pytest.mark.django_db


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_committed_ping_is_answered_by_the_worker_process(celery_worker_process):
    ping = workers.worker_ping_send()

    answered = workers.worker_ping_wait(ping_id=ping.id, timeout=60)

    assert answered.answered_at is not None
    assert answered.answered_by  # written by the worker, not by this process
    assert celery_worker_process.poll() is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_ping_worker_command_reports_the_answer(celery_worker_process, capsys):
    call_command("ping_worker", "--timeout", "60")

    assert "answered in" in capsys.readouterr().out


def test_nothing_is_enqueued_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            workers.worker_ping_send()
            raise RuntimeError("abort")

    assert callbacks == []
    assert not WorkerPing.objects.exists()


def test_a_ping_is_enqueued_only_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workers.worker_ping_send()

    assert len(callbacks) == 1


def test_answering_twice_keeps_the_first_answer():
    ping = WorkerPing.objects.create()

    assert workers.worker_ping_answer(ping_id=ping.id) is True
    first = WorkerPing.objects.get(id=ping.id).answered_at
    assert workers.worker_ping_answer(ping_id=ping.id) is False
    assert WorkerPing.objects.get(id=ping.id).answered_at == first


def test_waiting_without_a_worker_fails_with_a_clear_error():
    ping = WorkerPing.objects.create()  # never enqueued, so no worker will answer

    with pytest.raises(Unavailable, match="No worker answered within 0.5s"):
        workers.worker_ping_wait(ping_id=ping.id, timeout=0.5, interval=0.1)
