"""One call in flight per stored answer: identical calls made at the same moment share one
upstream call, so it is sent and billed once.

Kept in the Django cache, like the limits: with REDIS_URL set every web and worker process
takes part; in the embedded default the local-memory cache lets the threads of one process
share. The first caller takes a lock with the atomic `cache.add`, makes the call, stores the
answer and drops the lock; the others poll for the answer. A caller whose call fails keeps its
error to itself and drops the lock, and one of those waiting calls in its place; a lock left
by a killed process runs out after `lock_seconds`. A cache that keeps nothing (the dummy
backend) makes every caller call on its own, as if there were no lock.
"""

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

POLL_SECONDS = 0.05


def shared(key: str, call: Callable[[], Any], *, keep_seconds: int, lock_seconds: int) -> tuple[Any, bool]:
    """The answer stored at `key`, else the one `call()` returns, stored for `keep_seconds`.
    The flag is True for the caller that made the call. `lock_seconds` must outlast any call."""
    lock = f"{key}:in-flight"
    while True:
        if (stored := cache.get(key)) is not None:
            return stored, False
        token = uuid.uuid4().hex
        if cache.add(lock, token, timeout=lock_seconds):
            try:
                answer = call()
                cache.set(key, answer, timeout=keep_seconds)
                return answer, True
            finally:
                if cache.get(lock) == token:
                    cache.delete(lock)
        if (stored := _wait(key, lock, lock_seconds)) is not None:
            return stored, False


def _wait(key: str, lock: str, lock_seconds: int) -> Any:
    """The answer once the caller holding the lock stores it; None when the lock is gone without
    one (that call failed) or has outlived its timeout (taken again since), so the caller competes again."""
    deadline = time.monotonic() + lock_seconds
    while time.monotonic() < deadline:
        found = cache.get_many([key, lock])
        if key in found:
            return found[key]
        if lock not in found:
            return None
        time.sleep(POLL_SECONDS)
    return None
