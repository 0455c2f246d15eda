"""Sending tasks to the broker without depending on it.

Every task promptlab sends works on rows in PostgreSQL (a pending call, a running
experiment, a run to score, a webhook delivery), so a message is only a nudge: when the
broker refuses or hangs, the write that wanted the work still succeeds, the failure is
logged, and promptlab.sweeper sends the work again once the broker is back (within
SWEEP_SECONDS). After a failure, sends are not even tried for BROKER_RETRY_SECONDS, so a
hanging broker costs one timeout, not one per request.
"""

import threading
import time

import structlog
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = structlog.get_logger(__name__)

UNREACHABLE = (OperationalError, RedisConnectionError, RedisTimeoutError, OSError)

_down_until = 0.0
_lock = threading.Lock()


def send(task, *args, **options) -> bool:
    """Send the task now; False (logged) when the broker is unreachable and the sweeper will send it."""
    global _down_until
    if deferring():
        logger.info("dispatch.deferred", task=task.name, reason="broker unreachable")
        return False
    try:
        task.apply_async(args, retry=False, **options)
    except UNREACHABLE as exc:
        with _lock:
            _down_until = time.monotonic() + settings.BROKER_RETRY_SECONDS
        logger.warning("dispatch.broker_unreachable", task=task.name, error=f"{type(exc).__name__}: {exc}",
                       retry_seconds=settings.BROKER_RETRY_SECONDS)  # fmt: skip
        return False
    return True


def deferring() -> bool:
    """True while sends are left to the sweeper: the broker was unreachable within BROKER_RETRY_SECONDS."""
    return time.monotonic() < _down_until


def send_on_commit(task, *args, **options) -> None:
    """Send the task once the surrounding transaction commits (a worker never sees an id whose
    row is not there yet); immediately when there is none."""
    transaction.on_commit(lambda: send(task, *args, **options))
