"""What the gateway adds to a model call, and what LiteLLM costs a worker process.

All three call paths hit the same fake OpenAI-compatible server on 127.0.0.1 with no
latency, so the figures are pure client-side overhead: (a) a direct httpx POST, (b) a bare
`litellm.completion`, (c) `promptlab.llm.gateway.complete` (params check, credentials, breaker,
limits, cost, logging). The target is (c) - (b) under 1 ms per call.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.timing import Comparison, rates
from promptlab.llm import gateway
from promptlab.llm.models import ModelEndpoint
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to Ada"}]
PARAMS = {"temperature": 0.3, "max_tokens": 64}  # not 0: the response cache must stay out of it

# Runs in a fresh interpreter: what a worker pays to start, with and without LiteLLM.
# Resident memory is read from /proc: ru_maxrss would carry the parent's peak across exec.
STARTUP_PROBE = """
import re, time
def rss_kb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
started = time.perf_counter()
import django; django.setup()
setup_s, setup_kb = time.perf_counter() - started, rss_kb()
from promptlab.llm import gateway; gateway._litellm()
print(setup_s, setup_kb, time.perf_counter() - started, rss_kb())
"""
# The server runs in its own process, as a provider would: sharing this process's GIL
# would slow every client path by the server's own work.
SERVER = """
import sys, time
from tests.fake_openai import FakeOpenAI
server = FakeOpenAI(port=int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(3600)
"""


def run() -> list[Comparison]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    os.environ["PROMPTLAB_KEY_BENCH_OPENAI"] = "sk-bench"
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the fake OpenAI server did not start")
        return [*_per_call(f"http://127.0.0.1:{port}/v1"), *_startup()]
    finally:
        server.kill()
        server.wait()


def _per_call(base_url: str) -> list[Comparison]:
    endpoint = ModelEndpoint.objects.create(
        name="bench", display_name="bench", model="openai/gpt-4o-mini", api_base=base_url,
        api_key_env="PROMPTLAB_KEY_BENCH_OPENAI", max_retries=0,
    )  # fmt: skip
    litellm = gateway._litellm()
    client = httpx.Client()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **PARAMS}
    headers = {"Authorization": "Bearer sk-bench"}

    def direct_httpx():
        client.post(f"{base_url}/chat/completions", json=body, headers=headers).raise_for_status()

    def bare_litellm():
        litellm.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=base_url, api_key="sk-bench",
            timeout=60, num_retries=0, max_retries=0, **PARAMS,
        )  # fmt: skip

    def through_gateway():
        gateway.complete(endpoint=endpoint, messages=MESSAGES, params=PARAMS)

    gateway_log = logging.getLogger("promptlab.llm.gateway")
    level = gateway_log.level
    gateway_log.setLevel(logging.WARNING)  # console I/O is not what is measured
    try:
        litellm_rate, httpx_rate = rates(bare_litellm, direct_httpx, seconds=2.0)
        gateway_rate, litellm_rate_again = rates(through_gateway, bare_litellm, seconds=2.0)
    finally:
        gateway_log.setLevel(level)
        client.close()
    ms = {name: 1000 / rate for name, rate in [("httpx", httpx_rate), ("litellm", litellm_rate_again), ("gateway", gateway_rate)]}
    return [
        Comparison("(b) litellm.completion vs (a) httpx POST", "ms/call", 1000 / litellm_rate, ms["httpx"],
                   note="per call to the fake server at 0 ms latency; LiteLLM's own overhead.", lower_is_better=True),
        Comparison("(c) gateway.complete vs (b) litellm.completion", "ms/call", ms["gateway"], ms["litellm"],
                   note=f"the gateway adds {ms['gateway'] - ms['litellm']:+.2f} ms per call (target < 1 ms); "
                        "its log line is silenced while timing.", lower_is_better=True),
    ]  # fmt: skip


def _startup() -> list[Comparison]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlab.settings"}
    result = subprocess.run([sys.executable, "-c", STARTUP_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    setup_s, setup_kb, total_s, total_kb = map(float, result.stdout.split())
    return [
        Comparison("worker start: + LiteLLM vs django.setup()", "s", total_s, setup_s,
                   note=f"LiteLLM's import adds {total_s - setup_s:.2f} s, paid only on a process's first model call.",
                   lower_is_better=True),
        Comparison("worker memory: + LiteLLM vs django.setup()", "MB", total_kb / 1024, setup_kb / 1024,
                   note=f"resident memory after start-up; LiteLLM adds {(total_kb - setup_kb) / 1024:.0f} MB.", lower_is_better=True),
    ]  # fmt: skip
