"""Per-endpoint rate limits and circuit breakers, kept in the Django cache.

With REDIS_URL set the cache is Redis, so every web and worker process shares one limit
and one breaker per endpoint; in the embedded default the local-memory cache gives each
process its own. Only atomic cache operations are used (add, incr, delete), so the same
code is correct on both.
"""

import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from promptlab.llm.errors import TransientError
from promptlab.llm.models import ModelEndpoint


class LimitExceeded(TransientError):
    def __init__(self, message, *, endpoint: ModelEndpoint, retry_after: float):
        super().__init__(message, kind="busy", retry_after=retry_after, details={"endpoint": endpoint.name})


class CircuitOpen(TransientError):
    def __init__(self, message, *, endpoint: ModelEndpoint, retry_after: float):
        super().__init__(message, kind="circuit_open", retry_after=retry_after, details={"endpoint": endpoint.name})


def _key(endpoint: ModelEndpoint, *parts) -> str:
    return ":".join(["gateway", str(endpoint.pk), *map(str, parts)])


def _count_up(key: str, *, timeout) -> int:
    """Atomically add one to a counter that may not exist yet, or may just have been deleted
    by another process (a success closing the breaker)."""
    while True:
        if cache.add(key, 1, timeout=timeout):
            return 1
        try:
            return cache.incr(key)
        except ValueError:
            continue  # deleted between add and incr: start it again


def _take_request_slot(endpoint: ModelEndpoint) -> float:
    """Count one request in the current minute; 0 when allowed, else seconds until the next minute."""
    if not endpoint.requests_per_minute:
        return 0
    now = time.time()
    minute = int(now // 60)
    if _count_up(_key(endpoint, "rpm", minute), timeout=120) <= endpoint.requests_per_minute:
        return 0
    return (minute + 1) * 60 - now


def attempts_seconds(endpoint: ModelEndpoint) -> float:
    """The longest a call's attempts can take: each running to the endpoint's timeout, with the
    longest backoff between them. What a lease held for a call must outlast."""
    return endpoint.timeout_seconds * (endpoint.max_retries + 1) + settings.GATEWAY_BACKOFF_MAX_SECONDS * endpoint.max_retries


def _take_concurrency_slot(endpoint: ModelEndpoint, token: str) -> str | None:
    """Claim one of max_concurrency leased slots; None when all are taken.

    A slot's lease outlives the longest possible call, so one held by a killed process
    frees itself.
    """
    if not endpoint.max_concurrency:
        return ""
    lease = int(attempts_seconds(endpoint)) + 30
    for slot in random.sample(range(endpoint.max_concurrency), endpoint.max_concurrency):
        key = _key(endpoint, "slot", slot)
        if cache.add(key, token, timeout=lease):
            return key
    return None


@contextmanager
def endpoint_slot(endpoint: ModelEndpoint):
    """Hold one request of the endpoint's rate and one of its concurrent calls.

    Waits up to GATEWAY_LIMIT_WAIT_SECONDS for room, then raises LimitExceeded.
    """
    deadline = time.monotonic() + settings.GATEWAY_LIMIT_WAIT_SECONDS
    token = uuid.uuid4().hex
    slot = None
    while slot is None:
        slot = _take_concurrency_slot(endpoint, token)
        if slot is None:
            _wait_or_give_up(deadline, 0.05, endpoint, f"all {endpoint.max_concurrency} concurrent calls are in use")
    try:
        while wait := _take_request_slot(endpoint):
            _wait_or_give_up(deadline, wait, endpoint, f"its limit of {endpoint.requests_per_minute} requests per minute is reached")
        yield
    finally:
        if slot and cache.get(slot) == token:
            cache.delete(slot)


def _wait_or_give_up(deadline: float, wait: float, endpoint: ModelEndpoint, reason: str) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or wait > remaining:
        raise LimitExceeded(
            f"The model endpoint {endpoint.name!r} is busy: {reason}. Try again shortly.",
            endpoint=endpoint,
            retry_after=round(wait, 1),
        )
    time.sleep(wait + random.uniform(0, 0.05))


# --- Circuit breaker ----------------------------------------------------------------------


@dataclass(frozen=True)
class BreakerState:
    failures: int
    open_until: float | None  # epoch seconds

    @property
    def is_open(self) -> bool:
        return self.open_until is not None and time.time() < self.open_until

    def __str__(self):
        if self.is_open:
            return f"open for {self.open_until - time.time():.0f}s more ({self.failures} failures in a row)"
        return f"closed ({self.failures} failures in a row)" if self.failures else "closed"


def breaker_state(endpoint: ModelEndpoint) -> BreakerState:
    values = cache.get_many([_key(endpoint, "failures"), _key(endpoint, "open_until")])
    return BreakerState(values.get(_key(endpoint, "failures"), 0), values.get(_key(endpoint, "open_until")))


def breaker_check(endpoint: ModelEndpoint) -> BreakerState:
    """Fail fast while the breaker is open, else return its state. After the cool-down,
    calls go through again and the next result closes or reopens it."""
    state = breaker_state(endpoint)
    if state.is_open:
        remaining = state.open_until - time.time()
        raise CircuitOpen(
            f"The model endpoint {endpoint.name!r} failed {state.failures} times in a row; calls are paused "
            f"for {remaining:.0f}s more.",
            endpoint=endpoint,
            retry_after=round(remaining, 1),
        )
    return state


def breaker_close(endpoint: ModelEndpoint) -> None:
    """After a success, or an operator's reset in the admin: count from zero again."""
    cache.delete_many([_key(endpoint, "failures"), _key(endpoint, "open_until")])


def breaker_record_failure(endpoint: ModelEndpoint) -> None:
    """Count a transient failure; the Nth in a row opens the breaker for the cool-down."""
    if _count_up(_key(endpoint, "failures"), timeout=None) >= settings.GATEWAY_BREAKER_FAILURES:
        cooldown = settings.GATEWAY_BREAKER_COOLDOWN_SECONDS
        cache.set(_key(endpoint, "open_until"), time.time() + cooldown, timeout=int(cooldown) + 1)
