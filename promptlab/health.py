"""Probes for load balancers and orchestrators.

/healthz says the process serves requests and touches nothing else, so it stays up while
a dependency is down. /readyz checks each dependency at once, each in a thread of its own,
and answers within READY_TIMEOUT_SECONDS: 503 naming the ones that failed or did not answer
in time (a hanging Redis), with the reasons in the log, not in the (public) response.
"""

from concurrent.futures import ThreadPoolExecutor, wait

import structlog
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from promptlab.celery import app as celery_app

logger = structlog.get_logger(__name__)


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        # Drop the broken connection so the next request reconnects.
        connection.close()
        raise


def _check_cache() -> None:
    if ping := getattr(cache, "ping", None):  # Redis itself, not the in-memory fallback
        ping()
        return
    cache.set("readyz", "ok", timeout=10)
    if cache.get("readyz") != "ok":
        raise RuntimeError("the cache did not return what was just written")


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_SECONDS)


def _threaded(check):
    def run():
        try:
            check()
        finally:
            connection.close()  # this thread's own database connection

    return run


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
READY_TIMEOUT_SECONDS = 1.5


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: pool.submit(_threaded(check)) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=READY_TIMEOUT_SECONDS)
    pool.shutdown(wait=False)  # a check still hanging finishes on its own; the answer does not wait
    results = {}
    for name, future in futures.items():
        if not future.done():
            logger.warning("health.check_failed", check=name, error=f"no answer within {READY_TIMEOUT_SECONDS}s")
            results[name] = "no answer in time"
        elif exc := future.exception():
            logger.warning("health.check_failed", check=name, error=f"{type(exc).__name__}: {exc}")
            results[name] = f"unreachable ({type(exc).__name__})"
        else:
            results[name] = "ok"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed, "checks": results}, status=503)
    return JsonResponse({"status": "ready", "checks": results})
