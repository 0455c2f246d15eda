"""What promptlab's middleware stack costs on every request.

/healthz does no work of its own, so serving it through the whole stack (WSGI handler,
URL resolution, every entry of settings.MIDDLEWARE) against calling the view directly
shows the fixed price that each page and API call pays before it does anything.
django.test.Client's own bookkeeping (cookies, signal hooks, response decoration) is
inside the measured figure, so the ratio overstates what a real server pays; follow it
from run to run rather than reading it as the production cost.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.test import Client, RequestFactory

from bench.timing import Comparison, rates
from promptlab.health import healthz

REQUEST_LOGGER = "promptlab.http"


def run() -> list[Comparison]:
    client = Client()
    factory = RequestFactory()

    def through_stack():
        return client.get("/healthz")

    def view_alone():
        # The request is built on every call, as the client builds its own.
        return healthz(factory.get("/healthz"))

    with _request_log_silenced():
        for call in (through_stack, view_alone):
            _check_ok(call())
        measured, baseline = rates(through_stack, view_alone)
    return [
        Comparison(
            name="GET /healthz: full stack vs view alone",
            unit="req/s",
            measured=measured,
            baseline=baseline,
            note=(
                f"measured: django.test.Client through all {len(settings.MIDDLEWARE)} middleware; "
                "baseline: promptlab.health.healthz called on a RequestFactory request. "
                f"The {REQUEST_LOGGER} logger is raised to WARNING while timing: the per-request "
                "line is still built but not written, so console I/O is not what is measured."
            ),
        )
    ]


def _check_ok(response) -> None:
    """A benchmark of an error page (a disallowed host, a redirect) would time the wrong thing."""
    if response.status_code != 200:
        raise RuntimeError(f"GET /healthz answered {response.status_code}, expected 200")


@contextmanager
def _request_log_silenced() -> Iterator[None]:
    """Keep RequestLogMiddleware's line off the console for the duration, then restore the level."""
    request_log = logging.getLogger(REQUEST_LOGGER)
    level = request_log.level
    request_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        request_log.setLevel(level)
