"""promptlab_client against a live server (pytest-django's live_server, a real API key, the
Redis cache): cache hits make no request, the TTL and stale-while-revalidate windows,
revalidation with the ETag (304), a fallback or the cached answer when the server is gone,
and API errors raised with their code and message.

Every request the client sends is recorded by an httpx event hook; the client's clock is a
fake one the tests move forward, so no test sleeps through a TTL.
"""

import threading
import time

import httpx
import pytest

from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from promptlab_client import PromptlabClient, PromptlabError, PromptlabUnavailable
from prompts import services as prompt_services
from prompts.models import PromptCall
from tests.conftest import free_port
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """Every request the client sends and the status it got; while `answering` is clear, answers
    are held back (for up to 10 s)."""

    def __init__(self):
        self.sent: list[tuple[str, str, str | None]] = []  # method, path, If-None-Match
        self.statuses: list[int] = []
        self.answering = threading.Event()
        self.answering.set()

    def request(self, request: httpx.Request) -> None:
        self.sent.append((request.method, request.url.path, request.headers.get("If-None-Match")))

    def response(self, response: httpx.Response) -> None:
        self.answering.wait(timeout=10)
        self.statuses.append(response.status_code)



def wait_for_refreshes(timeout: float = 10.0) -> None:
    """Until no background refresh is running."""
    deadline = time.monotonic() + timeout
    while any(thread.name == "promptlab-refresh" for thread in threading.enumerate()):
        assert time.monotonic() < deadline, f"a refresh still runs after {timeout}s"
        time.sleep(0.01)


@pytest.fixture
def greet(endpoint, settings):
    """A project whose prompt `greet` has production on v1 and a newer v2, and a key to it."""
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="greet", message="v1", template="Hello {{ name }}!", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Hi {{ name }}.")
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="svc", scopes=["read", "render", "invoke"])
    prompt.owner, prompt.secret = owner.user, secret
    return prompt


def promote(prompt, version: int) -> None:
    prompt_services.label_move(prompt=prompt, actor=prompt.owner, label="production", version=version)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_client(live_server, greet, recorder, clock):
    clients = []

    def make(base_url: str = live_server.url, secret: str = greet.secret, **options) -> PromptlabClient:
        http = httpx.Client(event_hooks={"request": [recorder.request], "response": [recorder.response]})
        client = PromptlabClient(base_url, secret, http=http, clock=clock, **options)
        clients.append((client, http))
        return client

    yield make
    for _, http in clients:
        http.close()


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound and released: nothing listens there


# --- The cache ------------------------------------------------------------------------------------


def test_a_fetch_within_the_ttl_is_answered_from_memory(make_client, recorder, clock):
    client = make_client(ttl=60)

    first = client.get("greet")
    clock.advance(59)
    again = client.get("greet")

    assert (first["name"], first["version"], first["template"], first["labels"]) == ("greet", 1, "Hello {{ name }}!", ["production"])
    assert again == first
    assert recorder.sent == [("GET", "/api/v1/prompts/greet/", None)]


def test_each_label_version_and_variables_is_cached_apart(make_client, recorder):
    client = make_client(ttl=60)

    assert client.get("greet", label="latest")["version"] == 2
    assert client.get("greet", version=1)["template"] == "Hello {{ name }}!"
    assert client.render("greet", {"name": "Ada"}) == {"version": 1, "text": "Hello Ada!", "warnings": []}
    assert client.render("greet", {"name": "Bob"})["text"] == "Hello Bob!"
    assert client.render("greet", {"name": "Ada"}, version=2)["text"] == "Hi Ada."
    for _ in range(3):
        client.get("greet", label="latest"), client.get("greet", version=1), client.render("greet", {"name": "Ada"})

    assert len(recorder.sent) == 5


def test_a_caller_changing_an_answer_does_not_change_the_cache(make_client):
    client = make_client()

    client.get("greet")["template"] = "changed"

    assert client.get("greet")["template"] == "Hello {{ name }}!"


def test_after_the_ttl_the_prompt_is_revalidated_with_its_etag(make_client, recorder, clock, greet):
    client = make_client(ttl=10, stale_ttl=0)
    first = client.get("greet")

    clock.advance(11)
    unchanged = client.get("greet")
    promote(greet, 2)
    clock.advance(5)
    still_cached = client.get("greet")  # the new TTL started at the 304
    clock.advance(6)
    moved = client.get("greet")

    assert unchanged == first == still_cached
    assert recorder.statuses == [200, 304, 200]
    etag = recorder.sent[1][2]
    assert etag and etag.startswith('"') and recorder.sent[2][2] == etag
    assert moved["version"] == 2 and moved["template"] == "Hi {{ name }}."


def test_a_stale_answer_is_served_at_once_while_one_refresh_runs_in_the_background(make_client, recorder, clock, greet):
    client = make_client(ttl=10, stale_ttl=100)
    client.get("greet")
    promote(greet, 2)
    clock.advance(11)
    recorder.answering.clear()  # the refresh cannot finish until the stale answers are in

    stale = [client.get("greet") for _ in range(3)]
    answered_meanwhile = len(recorder.statuses)
    recorder.answering.set()
    wait_for_refreshes()
    refreshed = client.get("greet")

    assert answered_meanwhile == 1, "a stale answer waited for the refresh"
    assert [answer["version"] for answer in stale] == [1, 1, 1]
    assert refreshed["version"] == 2
    assert len(recorder.sent) == 2 and recorder.statuses == [200, 200]  # one refresh for three stale reads


def test_past_the_stale_window_the_fetch_waits_for_the_server(make_client, recorder, clock, greet):
    client = make_client(ttl=10, stale_ttl=20)
    client.get("greet")
    promote(greet, 2)
    clock.advance(31)

    assert client.get("greet")["version"] == 2
    assert len(recorder.sent) == 2


# --- When the server is gone ----------------------------------------------------------------------


def test_with_the_server_unreachable_the_callers_fallback_is_used(make_client, closed_port_url, recorder):
    client = make_client(base_url=closed_port_url, timeout=1)
    seen = []

    fetched = client.get("greet", fallback={"name": "greet", "template": "Hello {{ name }}!"})
    rendered = client.render("greet", {"name": "Ada"}, fallback=lambda exc: seen.append(exc) or {"text": "Hello Ada!"})
    invoked = client.invoke("greet", {"name": "Ada"}, fallback={"output": "Sorry, try again later."})

    assert fetched["template"] == "Hello {{ name }}!" and rendered == {"text": "Hello Ada!"}
    assert invoked == {"output": "Sorry, try again later."}
    assert isinstance(seen[0], PromptlabUnavailable) and "unreachable" in seen[0].message
    assert len(recorder.sent) == 3  # each call tried the server
    with pytest.raises(PromptlabUnavailable, match="unreachable"):
        client.get("greet")


def test_a_cached_answer_of_any_age_outlives_the_server(make_client, closed_port_url, clock):
    client = make_client(ttl=10, stale_ttl=10)
    first = client.get("greet")

    client.base_url = closed_port_url
    clock.advance(3600)

    assert client.get("greet", fallback={"never": "used"}) == first


# --- Errors ---------------------------------------------------------------------------------------


def test_refusals_raise_with_the_apis_code_message_and_details(make_client):
    client = make_client()

    with pytest.raises(PromptlabError) as unknown:
        client.get("nope", fallback={"a fallback": "never hides a refusal"})
    with pytest.raises(PromptlabError) as missing:
        client.render("greet", {})
    with pytest.raises(PromptlabError) as refused:
        make_client(secret="pl_AAAAAAAA_" + "x" * 43).get("greet")

    assert not isinstance(unknown.value, PromptlabUnavailable)
    assert (unknown.value.status, unknown.value.code) == (404, "not_found") and "nope" in unknown.value.message
    assert (missing.value.status, missing.value.code, missing.value.details) == (400, "missing_variables", {"missing": ["name"]})
    assert str(missing.value).startswith("400 missing_variables: ")
    assert (refused.value.status, refused.value.code) == (401, "authentication_failed")


def test_a_throttled_client_serves_its_cached_answer(make_client, clock, settings):
    if time.time() % 60 > 55:  # the limit counts per clock minute: stay inside one
        time.sleep(60.5 - time.time() % 60)
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    client = make_client(ttl=1, stale_ttl=0)
    first = client.get("greet")
    clock.advance(2)

    assert client.get("greet") == first  # the second request this minute answers 429
    with pytest.raises(PromptlabUnavailable) as throttled:
        client.get("greet", label="latest")
    assert (throttled.value.status, throttled.value.code) == (429, "throttled")


# --- Invoke ---------------------------------------------------------------------------------------


@pytest.fixture
def eager_tasks():
    """Invoke's task runs inside the live server's thread: no worker process needed."""
    from promptlab.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


def test_invoke_calls_the_model_every_time(make_client, eager_tasks, llm_server, greet):
    client = make_client()

    answers = [client.invoke("greet", {"name": "Ada"}) for _ in range(2)]

    assert [answer["output"] for answer in answers] == ["fake answer to: Hello Ada!"] * 2
    assert answers[0]["call_id"] != answers[1]["call_id"] and answers[0]["version"] == 1
    assert PromptCall.objects.filter(prompt=greet).count() == 2
    with pytest.raises(PromptlabError) as missing:
        client.invoke("greet", {}, fallback={"output": "never used"})
    assert missing.value.code == "missing_variables"
