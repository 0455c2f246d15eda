"""What the prompt-serving API costs over Django itself, under a real server.

Services fetch `GET /api/v1/prompts/{name}/?label=production` on their hot path, so a cached
fetch must cost little more than the cheapest Django view. gunicorn runs with promptlab's
production config (promptlab/gunicorn.py: gthread workers) and 2 workers, serving promptlab's
URLs plus one bench-only URL, `/bench/floor/`: a bare Django view returning a JSON document
of the same shape, behind the same middleware (the framework floor). Production URLs are
unchanged: gunicorn loads `server()` below, which adds the floor URL in this process only.

A load generator in this process (asyncio, raw HTTP/1.1, CONNECTIONS concurrent connections,
keep-alive when the server allows it, as gthread workers do, on both sides alike) drives each side in alternating rounds; each
side's best round counts. Rows: requests per second (API vs floor) and p99 latency.
Targets: API >= 0.7 x the floor's throughput (ratio <= 1.43x) and p99 < 20 ms at 32
connections. BENCH_API_CONNECTIONS and BENCH_API_SECONDS (per round) change the load.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import Comparison
from promptlab.accounts import services as account_services
from promptlab.llm import services as llm_services

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "32"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "3"))
ROUNDS = 3
WORKERS = 2
FLOOR_PATH = "/bench/floor/"
API_PATH = "/api/v1/prompts/greet/?label=production"

# --- In the gunicorn workers ----------------------------------------------------------------------

handler404 = "promptlab.api.page_not_found"
handler500 = "promptlab.api.server_error"
urlpatterns: list = []  # filled in by server(): this module is the workers' URLconf


def server():
    """gunicorn's app factory (`bench.bench_api:server()`): promptlab's WSGI application with
    this module as its URLconf, which is promptlab's URLs plus the floor."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promptlab.settings")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    from django.conf import settings
    from django.urls import path

    import promptlab.urls

    urlpatterns[:] = [path(FLOOR_PATH.strip("/") + "/", floor), *promptlab.urls.urlpatterns]
    settings.ROOT_URLCONF = __name__
    return application


FLOOR_DOCUMENT = {
    "name": "greet", "version": 1, "labels": ["production"], "kind": "text", "template": "Hello {{ name }}!", "messages": None,
    "model": "bench-api", "provider_model": "promptlab-demo/echo", "params": {}, "variables": [], "used_variables": ["name"],
    "strict_variables": False, "description": "", "tags": [], "message": "bench", "created_at": "2025-01-01T00:00:00Z",
}  # fmt: skip


def floor(request):
    """The cheapest JSON answer Django gives: no authentication, no cache, no database."""
    from django.http import JsonResponse

    return JsonResponse(FLOOR_DOCUMENT)


# --- In the benchmark process ---------------------------------------------------------------------


def run() -> list[Comparison]:
    from django.db import connection

    from tests.conftest import database_url_for, free_port, stop, wait_for_http

    secret = _prompt_and_key()
    port = free_port()
    env = {
        **os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), "DJANGO_DEBUG": "0", "LOG_FORMAT": "json",
        "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(WORKERS), "API_RATE_LIMIT_PER_MINUTE": str(10**9),
    }  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:promptlab.gunicorn", "bench.bench_api:server()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
            sides = {"api": _request(API_PATH, secret), "floor": _request(FLOOR_PATH, None)}
            results = asyncio.run(_measure(port, sides))
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            stop(process)
    api, floor_ = results["api"], results["floor"]
    figures = (f"API {api.rps:,.0f} req/s, p50 {api.p50:.1f} ms, p99 {api.p99:.1f} ms; floor {floor_.rps:,.0f} req/s, "
               f"p50 {floor_.p50:.1f} ms, p99 {floor_.p99:.1f} ms")  # fmt: skip
    setup = (f"gunicorn {WORKERS} gthread workers, {CONNECTIONS} connections, best of {ROUNDS} rounds of {SECONDS:g} s "
             f"(the load generator used {api.generator_cpu:.0%} / {floor_.generator_cpu:.0%} of a core)")  # fmt: skip
    return [
        Comparison(
            "GET prompts/{name}/?label=production vs bare JSON view", "req/s", api.rps, floor_.rps,
            note=f"{setup}; {figures}. Target: API >= 0.7x the floor's throughput (ratio <= 1.43x).",
        ),
        Comparison(
            f"p99 latency of that GET at {CONNECTIONS} connections vs floor", "ms", api.p99, floor_.p99, lower_is_better=True,
            note=f"target: API p99 < 20 ms (measured {api.p99:.1f} ms).",
        ),
    ]  # fmt: skip


def _prompt_and_key() -> str:
    """A project with `greet` (production on v1) on the offline demo model; its API key."""
    from django.contrib.auth import get_user_model

    from promptlab.accounts import api_keys
    from promptlab.llm.models import DEMO_PROVIDER
    from prompts import services as prompts

    owner = get_user_model().objects.create_user("bench-api", "bench-api@example.com")
    project = account_services.project_create(slug="bench-api", owner=owner)
    endpoint, _ = llm_services.endpoint_save(name="bench-api", display_name="bench", model=f"{DEMO_PROVIDER}/echo")
    prompt = prompts.prompt_create(
        project=project, actor=owner, name="greet", message="bench", template="Hello {{ name }}!", endpoint=endpoint
    )
    prompts.label_move(prompt=prompt, actor=owner, label="production", version=1)
    return api_keys.api_key_create(project=project, actor=owner, name="bench", scopes=["read"])[1]


class Round:
    def __init__(self, latencies: list[float], seconds: float, cpu_seconds: float):
        self.generator_cpu = cpu_seconds / seconds  # the load generator's share of a core
        latencies.sort()
        self.rps = len(latencies) / seconds
        self.p50 = latencies[len(latencies) // 2] * 1000
        self.p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000


def _request(path: str, secret: str | None) -> bytes:
    headers = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json", "Connection: keep-alive"]
    if secret:
        headers.append(f"Authorization: Bearer {secret}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


async def _measure(port: int, sides: dict[str, bytes]) -> dict[str, Round]:
    """Both sides in alternating rounds after a warm-up of each (which also fills the caches of
    both workers); each side's round with the most requests per second."""
    for request in sides.values():
        await _load(port, request, 0.5)
    best: dict[str, Round] = {}
    for _ in range(ROUNDS):
        for side, request in sides.items():
            cpu = time.process_time()
            latencies, elapsed = await _load(port, request, SECONDS)
            result = Round(latencies, elapsed, time.process_time() - cpu)
            if side not in best or result.rps > best[side].rps:
                best[side] = result
    return best


async def _load(port: int, request: bytes, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(port, request, deadline, latencies) for _ in range(CONNECTIONS)))
    return latencies, time.perf_counter() - started


async def _connection(port: int, request: bytes, deadline: float, latencies: list[float]) -> None:
    """One client connection sending requests back to back until the deadline; reconnects
    when the server closes it. A request's latency includes connecting, when it had to."""
    reader = writer = None
    try:
        while (started := time.perf_counter()) < deadline:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
            }
            body = await reader.readexactly(int(fields.get(b"content-length", 0)))
            if not head.startswith(b"HTTP/1.1 200"):
                status_line = head.partition(b"\r\n")[0].decode()
                raise RuntimeError(f"{request.split(b' ')[1].decode()} answered {status_line}: {body[:300]!r}")
            latencies.append(time.perf_counter() - started)
            if fields.get(b"connection", b"").lower() == b"close":
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()
