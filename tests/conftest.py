import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A fresh key space per test: breaker and limit counters never leak between tests, and
    # nothing flushes the Redis database that the broker shares.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
    settings.GATEWAY_BACKOFF_SECONDS = 0.01


@pytest.fixture(scope="session")
def _fake_openai_server():
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(_fake_openai_server):
    """The fake OpenAI-compatible server on 127.0.0.1, reset for this test."""
    _fake_openai_server.reset()
    return _fake_openai_server


@pytest.fixture
def endpoint(db, llm_server, monkeypatch):
    """A model endpoint that LiteLLM reaches over HTTP at the fake server."""
    from tests.factories import ModelEndpointFactory

    monkeypatch.setenv("PROMPTLAB_KEY_TEST_OPENAI", "sk-test-123")
    return ModelEndpointFactory(api_base=llm_server.base_url, api_key_env="PROMPTLAB_KEY_TEST_OPENAI")


@pytest.fixture
def two_versions(endpoint):
    """A prompt `answer` at v1 ("Answer: ...", production) and v2 ("Reply briefly: ..."), and a
    five-item dataset of `question`s: (owner, prompt, dataset, endpoint)."""
    from experiments.models import DatasetItem
    from promptlab.accounts.models import Role
    from prompts import services as prompt_services
    from tests.factories import DatasetFactory, MembershipFactory

    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Answer: {{ question }}", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Reply briefly: {{ question }}")
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"question": f"q{n}"}) for n in range(1, 6)])
    return owner, prompt, dataset, endpoint


@pytest.fixture
def answering(two_versions):
    """two_versions with an evaluator `brief` that passes what v2 answers and fails v1's (the
    fake model echoes its prompt). experiment() makes a draft of prod against v2 on them."""
    from types import SimpleNamespace

    from evaluations import services
    from experiments import services as experiment_services

    owner, prompt, dataset, _ = two_versions
    brief = services.evaluator_create(project=owner.project, actor=owner.user, name="brief", kind="contains", config={"value": "Reply briefly"})

    def experiment(*, evaluators=(brief,), **fields):
        variants = [{"name": "prod", "prompt": prompt, "label": "production"}, {"name": "v2", "prompt": prompt, "version": 2}]
        return experiment_services.experiment_create(project=owner.project, actor=owner.user, name="brevity", dataset=dataset,
                                                      variants=variants, attach={"evaluators": list(evaluators)}, **fields)  # fmt: skip

    return SimpleNamespace(owner=owner, prompt=prompt, dataset=dataset, brief=brief, experiment=experiment)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None):
    """Poll until the URL answers at all (any status); fail early if the process died."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def database_url_for(settings_dict: dict) -> str:
    """A DATABASE_URL that points another process at the database the tests use."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = quote(settings_dict["USER"] or "", safe="")
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    return f"postgres://{credentials}{settings_dict['HOST']}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"


def start_worker(*, concurrency: int = 1, name: str = "test-worker", **env_overrides) -> subprocess.Popen:
    """A real `celery -A promptlab worker` process on the test database and broker."""
    from django.db import connection

    env = {**os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), **env_overrides}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "promptlab", "worker", "--concurrency", str(concurrency), "--loglevel",
         "WARNING", "--without-gossip", "--without-mingle", "--hostname", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # so a test can SIGKILL the whole worker, pool included
    )  # fmt: skip


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    process = start_worker()
    yield process
    stop(process)


@pytest.fixture
def socket_guard(monkeypatch, settings):
    """Refuses and records every connection except to the project's own database and Redis;
    the test asserts the list is empty."""
    from urllib.parse import urlsplit

    services = {int(settings.DATABASES["default"].get("PORT") or 5432)}
    if settings.REDIS_URL:
        services.add(urlsplit(settings.REDIS_URL).port or 6379)
    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[1] in services:
            return real_connect(self, address)
        attempts.append(address)
        raise OSError(f"network access during a test that must stay offline: {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    monkeypatch.setattr(socket.socket, "connect", real_connect)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser). Without it the
    browser tests are skipped, unless PROMPTLAB_REQUIRE_BROWSER is set (CI sets it)."""
    if not Path(CHROMIUM).exists():
        message = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("PROMPTLAB_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread from here on; Django would
    # otherwise refuse the tests' own database calls as if they came from async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page, email: str, password: str = "correct horse battery staple") -> None:
    """Sign in through the login form, as a person would (UserFactory's password by default)."""
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_url("**/")


ARTIFACTS = ROOT / "var" / "test-artifacts"  # screenshots the browser tests keep (var/ is not committed)
