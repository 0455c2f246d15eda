"""The Redis cache as an accelerator, never a single point of failure.

Everything promptlab keeps in the cache (resolved prompts, API-key lookups, rate counters,
endpoint limits and breakers, single-flight locks) can be rebuilt from PostgreSQL or
restarted from zero. So when Redis refuses, resets or stops answering within its short
socket timeout, this backend serves from this process's memory instead, and stops asking
Redis for REDIS_RETRY_SECONDS, so a hanging Redis costs one timeout, not one per request.
Meanwhile each process keeps its own limits and counters, as in the embedded default, and
what it caches expires within REDIS_FALLBACK_SECONDS, so an invalidation made by another
process is missed for at most that long.
"""

import threading
import time

import structlog
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = structlog.get_logger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class _ShortLived(LocMemCache):
    """This process's memory, where nothing outlives REDIS_FALLBACK_SECONDS."""

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        expiry = super().get_backend_timeout(timeout)
        cap = time.time() + settings.REDIS_FALLBACK_SECONDS
        return cap if expiry is None else min(expiry, cap)


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._fallback = _ShortLived(f"redis-fallback-{id(self)}", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
        self._down_until = 0.0
        self._lock = threading.Lock()

    def ping(self) -> None:
        """Ask Redis itself, past the fallback: raises when it is unreachable (for /readyz)."""
        self._cache.get_client(write=True).ping()

    def _redis_down(self, operation: str, exc: Exception) -> None:
        with self._lock:
            was_up = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + settings.REDIS_RETRY_SECONDS
        if was_up:
            logger.warning("cache.redis_unreachable", operation=operation, error=f"{type(exc).__name__}: {exc}",
                           retry_seconds=settings.REDIS_RETRY_SECONDS)  # fmt: skip


def _resilient(name: str):
    def operation(self, *args, **kwargs):
        if time.monotonic() < self._down_until:
            return getattr(self._fallback, name)(*args, **kwargs)
        try:
            return getattr(RedisCache, name)(self, *args, **kwargs)
        except UNREACHABLE as exc:
            self._redis_down(name, exc)
            return getattr(self._fallback, name)(*args, **kwargs)

    operation.__name__ = name
    return operation


# Every operation Django's cache API offers that reaches Redis (get_or_set and the *_many
# defaults of BaseCache are built on these, or are overridden by RedisCache).
for _name in ("get", "set", "add", "touch", "delete", "get_many", "set_many", "delete_many", "has_key", "incr", "clear"):
    setattr(ResilientRedisCache, _name, _resilient(_name))
