"""How close the Celery runner gets to ideal concurrency, and what it costs a worker per run.

N items x 2 variants run on real `celery worker` processes (thread pools, C threads in all)
against the fake OpenAI server in its own process with a fixed latency L. Ideal wall time is
N*2*L/C; the ratio says how much the runner adds (claiming, rendering, the gateway, writing
results). Worker CPU per run is read from /proc for the worker processes. Target: ratio <= 1.15 at
N=200, L=200 ms, C=16, and < 10 ms CPU per run. BENCH_EXPERIMENT_ITEMS changes N.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db.models import Avg

from bench.timing import Comparison
from experiments import services as experiments
from experiments.models import Dataset, DatasetItem, ExperimentStatus
from promptlab.accounts import services as account_services
from promptlab.llm.models import ModelEndpoint
from prompts import services as prompts
from tests.conftest import database_url_for, free_port

ROOT = Path(__file__).resolve().parent.parent
ITEMS = int(os.environ.get("BENCH_EXPERIMENT_ITEMS", "200"))
LATENCY = 0.2
CONCURRENCY = 16
# Worker processes sharing the concurrency (threads each = C / processes); one per core is
# how workers are meant to run (README, Scaling out). BENCH_WORKER_PROCESSES changes it.
PROCESSES = int(os.environ.get("BENCH_WORKER_PROCESSES", "2"))
SERVER = """
import sys, time
from tests.fake_openai import FakeOpenAI
server = FakeOpenAI(port=int(sys.argv[1])).start()
server.latency = float(sys.argv[2])
print("ready", flush=True)
time.sleep(3600)
"""


def run() -> list[Comparison]:
    from django.db import connection

    os.environ["PROMPTLAB_KEY_BENCH_OPENAI"] = "sk-bench"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(LATENCY)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    env = {**os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), "LOG_LEVEL": "WARNING", "DJANGO_DEBUG": "0"}
    names = [f"bench-{os.getpid()}-{n}@{socket.gethostname()}" for n in range(PROCESSES)]
    pool = [
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "promptlab", "worker", "-P", "threads", "-c", str(CONCURRENCY // PROCESSES),
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "--hostname", name],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name in names
    ]
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the fake OpenAI server did not start")
        experiment = _experiment(f"http://127.0.0.1:{port}/v1")
        _wait_ready(names)
        cpu_before = sum(_cpu_seconds(worker.pid) for worker in pool)
        started = time.perf_counter()
        experiments.experiment_start(experiment=experiment, actor=None)
        while experiment.status == ExperimentStatus.RUNNING or experiment.status == ExperimentStatus.DRAFT:
            time.sleep(0.05)
            experiment.refresh_from_db()
        wall = time.perf_counter() - started
        cpu_ms = (sum(_cpu_seconds(worker.pid) for worker in pool) - cpu_before) * 1000
    finally:
        for worker in pool:
            worker.terminate()
        for worker in pool:
            worker.wait(timeout=30)
        server.kill()
        server.wait()
    runs = ITEMS * 2
    counts = experiments.experiment_counts(experiment)
    if counts["done"] != runs:
        raise RuntimeError(f"the experiment did not complete: {counts}")
    ideal = runs * LATENCY / CONCURRENCY
    call_ms = experiment.runs.aggregate(mean=Avg("latency_ms"))["mean"]
    return [
        Comparison(f"experiment wall time vs ideal N*2*L/C (N={ITEMS})", "s", wall, ideal, lower_is_better=True,
                   note=f"{runs} runs, L={LATENCY * 1000:.0f} ms, C={CONCURRENCY} threads in {PROCESSES} worker process(es); target ratio <= 1.15. "
                        f"Worker CPU {cpu_ms / runs:.1f} ms per run (target < 10 ms); "
                        f"mean call time seen by the gateway {call_ms:.0f} ms."),
    ]  # fmt: skip


def _experiment(base_url: str):
    owner = get_user_model().objects.create_user("bench-runner", "bench-runner@example.com")
    project = account_services.project_create(slug="bench-throughput", owner=owner)
    endpoint = ModelEndpoint.objects.create(
        name="bench-throughput", display_name="bench", model="openai/gpt-4o-mini", api_base=base_url,
        api_key_env="PROMPTLAB_KEY_BENCH_OPENAI", max_retries=0,
    )  # fmt: skip
    prompt = prompts.prompt_create(project=project, actor=owner, name="answer", message="bench", template="Q: {{ q }}", endpoint=endpoint)
    dataset = Dataset.objects.create(project=project, name="bench")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, ITEMS + 1)])
    return experiments.experiment_create(
        project=project, actor=owner, name="throughput", dataset=dataset, concurrency=CONCURRENCY,
        variants=[{"name": "a", "prompt": prompt, "version": 1}, {"name": "b", "prompt": prompt, "version": 1, "params": {"temperature": 0.5}}],
    )  # fmt: skip


def _wait_ready(names: list[str], timeout: float = 60) -> None:
    """Until every worker answers a ping: started, LiteLLM imported, consuming."""
    from promptlab.celery import app

    deadline = time.monotonic() + timeout
    while {name for reply in app.control.ping(destination=names, timeout=1) for name in reply} != set(names):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers {names} did not start within {timeout:g}s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
