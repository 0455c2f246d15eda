"""Leases on claimed rows, renewed while their work is in flight: no call is made twice.

A worker claims a row (an experiment run, an invoke or playground call, a score) with a
compare-and-set that bumps the row's `claims` counter and sets `lease_until`; another worker
may take the row over only once `lease_until` has passed. While the claim is `held(...)`, a
daemon thread of the process pushes `lease_until` forward every third of the lease
(LLM_CALL_LEASE_SECONDS), so a call slower than the lease keeps its row, and only the rows of
a process that died (its heartbeat died with it) come back, one lease later.

The heartbeat renews a row only through the queryset its claim gave (the row filtered by that
claim), so a claim that another worker took over is never renewed. The thread starts in the
process that first holds a lease: under a forking pool (Celery's prefork) each child starts its
own after the fork. It uses its own database connection and closes it after every round.

Call rows (runs, invoke and playground calls) go pending -> running -> finished; `claimable`,
`claim` and `stranded` serve that shape. Scores have their own claim and use `held` alone.
"""

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils import timezone

logger = structlog.get_logger(__name__)

PENDING, RUNNING = "pending", "running"  # the statuses of a call row before it finishes


def lease_end() -> datetime:
    """When a lease taken or renewed now runs out."""
    return timezone.now() + timedelta(seconds=settings.LLM_CALL_LEASE_SECONDS)


def expired() -> Q:
    """Rows whose lease ran out: their worker died (a live one renews it)."""
    return Q(lease_until__lt=timezone.now())


def claimable() -> Q:
    """Call rows a worker may claim: pending ones, and running ones whose worker died."""
    return Q(status=PENDING) | Q(expired(), status=RUNNING)


def stranded(rows: QuerySet, *, pending_before: datetime | None = None) -> list:
    """The pks of the call rows a worker should be making and none is: running ones whose worker
    died (their lease ran out), and ones pending since before `pending_before`, default a lease
    ago (the message asking for them was lost, say while the broker was down)."""
    pending_before = pending_before or timezone.now() - timedelta(seconds=settings.LLM_CALL_LEASE_SECONDS)
    stuck = Q(status=PENDING, created_at__lt=pending_before) | Q(expired(), status=RUNNING)
    return list(rows.filter(stuck).values_list("pk", flat=True))


def claim(rows: QuerySet) -> QuerySet | None:
    """Claim the call row `rows` selects (by pk) if it is claimable, with a compare-and-set on its
    claims counter: of two workers trying at once, one wins. It is then running under a fresh
    lease. Returns the row narrowed to this claim (hold it with `held`, write the result through
    it: nothing is written once another worker took the row over), or None."""
    claims = rows.filter(claimable()).values_list("claims", flat=True).first()
    if claims is None:
        return None
    if not rows.filter(claimable(), claims=claims).update(status=RUNNING, claims=claims + 1, lease_until=lease_end()):
        return None
    return rows.filter(status=RUNNING, claims=claims + 1)


@contextmanager
def held(claimed: QuerySet):
    """Renew the lease of the rows `claimed` selects (filtered by their claim, so that a lost
    claim is never renewed) until the block exits. Renewal stops by itself for rows that no
    longer match: finished, or taken over after this process stalled past its lease."""
    heartbeat = _heartbeat
    holding = heartbeat.hold(claimed)
    try:
        yield
    finally:
        heartbeat.release(holding)


@dataclass(eq=False)
class _Holding:
    claimed: QuerySet
    period: float  # seconds between renewals: a third of the lease
    due: float  # time.monotonic() of the next renewal


class _Heartbeat:
    """The process's renewer: one daemon thread for every lease the process holds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.holdings: set[_Holding] = set()
        self.thread: threading.Thread | None = None

    def hold(self, claimed: QuerySet) -> _Holding:
        period = settings.LLM_CALL_LEASE_SECONDS / 3
        holding = _Holding(claimed, period, time.monotonic() + period)
        with self.lock:
            self.holdings.add(holding)
            if self.thread is None:
                self.thread = threading.Thread(target=self._beat, name="promptlab-leases", daemon=True)
                self.thread.start()
        self.changed.set()  # its renewal may be due before the one the thread waits for
        return holding

    def release(self, holding: _Holding) -> None:
        with self.lock:
            self.holdings.discard(holding)

    def _beat(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                due = [holding for holding in self.holdings if holding.due <= now]
                for holding in due:
                    holding.due = now + holding.period
                next_due = min((holding.due for holding in self.holdings), default=None)
            if due:
                self._renew(due)
            self.changed.wait(None if next_due is None else max(0.0, next_due - time.monotonic()))
            self.changed.clear()

    def _renew(self, due: list[_Holding]) -> None:
        try:
            for holding in due:
                if not holding.claimed.update(lease_until=lease_end()):
                    self.release(holding)  # finished meanwhile, or taken over: its claim never comes back
        except Exception:  # the database is away: these leases run out unless it is back in time
            logger.exception("leases.renew_failed", rows=len(due))
        finally:
            connections.close_all()  # this thread's own connection: never left open across an outage


_heartbeat = _Heartbeat()


def _forget_after_fork() -> None:
    """A forked child holds none of its parent's leases, and has no heartbeat thread yet."""
    global _heartbeat
    _heartbeat = _Heartbeat()


os.register_at_fork(after_in_child=_forget_after_fork)
