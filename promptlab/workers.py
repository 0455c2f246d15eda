"""Worker liveness: send a ping through the broker and wait for a worker to answer it."""

import socket
import time

from django.db import transaction
from django.utils import timezone

from promptlab import dispatch
from promptlab.errors import Unavailable
from promptlab.models import WorkerPing


@transaction.atomic
def worker_ping_send() -> WorkerPing:
    """Record a ping and enqueue it once the row is committed."""
    from promptlab.tasks import worker_ping_answer

    ping = WorkerPing.objects.create()
    dispatch.send_on_commit(worker_ping_answer, str(ping.id))
    return ping


def worker_ping_answer(*, ping_id: str) -> bool:
    """Mark the ping answered by this host; only the first answer counts."""
    return bool(
        WorkerPing.objects.filter(id=ping_id, answered_at__isnull=True).update(
            answered_at=timezone.now(), answered_by=socket.gethostname()
        )
    )


def worker_ping_wait(*, ping_id, timeout: float, interval: float = 0.2) -> WorkerPing:
    """Return the answered ping, or raise Unavailable when no worker answered in time."""
    deadline = time.monotonic() + timeout
    while True:
        ping = WorkerPing.objects.get(id=ping_id)
        if ping.answered_at is not None:
            return ping
        if time.monotonic() >= deadline:
            raise Unavailable(
                f"No worker answered within {timeout:g}s: is `celery -A promptlab worker` running "
                "against the same broker and database?"
            )
        time.sleep(interval)
