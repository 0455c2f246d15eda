"""Work whose message was lost is sent again: the broker is a nudge, PostgreSQL the record.

A message can be lost when the broker was unreachable as it was sent (promptlab.dispatch),
or when the broker restarted without persistence with messages queued. Each app registers a
recovery here: a function that finds, in the database, work that should be going on and is
not (a pending call nobody took, a running experiment with nothing in flight and nothing
finished lately, a scoring experiment whose scores stopped coming) and sends its task again.
Every task claims its rows with a compare-and-set, so work sent twice is still done once.

Every worker process sweeps every SWEEP_SECONDS in a thread of its own; work is stale after
SWEEP_STALE_SECONDS without a sign of life, so it is sent again within about a minute.
"""

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = structlog.get_logger(__name__)

RECOVERIES: dict[str, Callable] = {}


def recovery(function: Callable) -> Callable:
    """Register `function(stale_before) -> int`: send again the work that showed no sign of life
    since `stale_before`; return how many tasks it sent."""
    RECOVERIES[f"{function.__module__}.{function.__qualname__}"] = function
    return function


def sweep() -> dict[str, int]:
    """Run every recovery once; one that fails is logged and does not stop the others."""
    stale_before = timezone.now() - timedelta(seconds=settings.SWEEP_STALE_SECONDS)
    sent = {}
    for name, function in RECOVERIES.items():
        try:
            sent[name] = function(stale_before)
        except Exception:
            logger.exception("sweeper.recovery_failed", recovery=name)
    if any(sent.values()):
        logger.info("sweeper.sent_again", **{name.rsplit(".", 1)[-1]: count for name, count in sent.items() if count})
    return sent


def start() -> threading.Thread:
    """Sweep every SWEEP_SECONDS in a daemon thread, for as long as the process lives."""

    def loop():
        while True:
            time.sleep(settings.SWEEP_SECONDS)
            close_old_connections()
            try:
                sweep()
            finally:
                connection.close()  # this thread's own connection: never left half-open across an outage

    thread = threading.Thread(target=loop, name="promptlab-sweeper", daemon=True)
    thread.start()
    return thread
