"""Webhooks against a real HTTP receiver on 127.0.0.1: signed deliveries that verify, retries
with backoff after 500s, a delivery log of every attempt, the host allowlist, and the admin
(secret shown once, the log). The task runs eagerly here, and on a real worker at the end."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bs4 import BeautifulSoup

from evaluations.governance import approvals, tasks, webhooks
from evaluations.governance.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from promptlab.accounts.models import Role
from promptlab.celery import app
from promptlab.errors import Invalid
from prompts import services as prompts
from tests.conftest import start_worker, stop
from tests.factories import MembershipFactory, ModelEndpointFactory, WebhookFactory

pytestmark = pytest.mark.django_db


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The receiver's check, as docs/user-guide/shipping.md shows it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """A webhook receiver: answers each POST with the next of `statuses` (then 200), after
    `delay` seconds, with `body` (else a short text), and keeps every request."""

    def __init__(self):
        self.requests, self.statuses, self.delay, self.location, self.body = [], [], 0.0, None, None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = receiver.body or f"status {status} for request {len(receiver.requests)}".encode()
                try:
                    self.send_response(status)
                    if receiver.location:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/promptlab"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def eager(settings):
    """Tasks run in this process as they are enqueued; retries follow at once (Celery's eager
    mode ignores countdowns), so a whole delivery happens inside the call that enqueued it."""
    settings.WEBHOOK_BACKOFF_SECONDS = 0.01
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def shop():
    owner = MembershipFactory(role=Role.OWNER, user__email="owner@example.com")
    endpoint = ModelEndpointFactory(model="promptlab-demo/echo")
    return owner.project, owner.user, endpoint


def hook(shop, receiver, events=("prompt.version_created", "label.moved", "approval.requested", "approval.decided")):
    project, owner, _ = shop
    return webhooks.webhook_create(project=project, actor=owner, name="ci", url=receiver.url, events=list(events))


def test_a_saved_version_is_posted_signed_and_logged(shop, receiver, eager, django_capture_on_commit_callbacks):
    project, owner, endpoint = shop
    webhook, secret = hook(shop, receiver)

    with django_capture_on_commit_callbacks(execute=True):
        prompts.prompt_create(project=project, actor=owner, name="faq", message="First draft", template="Q: {{ q }}", endpoint=endpoint)

    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert verify(secret, body, headers["X-Promptlab-Signature"])
    assert not verify("whsec_another", body, headers["X-Promptlab-Signature"])
    assert not verify(secret, body + b" ", headers["X-Promptlab-Signature"])  # a tampered body
    assert headers["X-Promptlab-Event"] == "prompt.version_created" and headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["event"] == "prompt.version_created" and payload["project"]["slug"] == project.slug
    assert payload["data"] | {"url": None} == {"prompt": "faq", "version": 1, "message": "First draft", "author": "owner@example.com",
                                               "url": None}  # fmt: skip
    assert payload["data"]["url"].endswith(f"/projects/{project.slug}/prompts/faq/")
    delivery = WebhookDelivery.objects.get()
    assert str(delivery.pk) == headers["X-Promptlab-Delivery"] and str(delivery.event_id) == payload["id"]
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1 and delivery.finished_at
    attempt = delivery.attempt_log.get()
    assert attempt.status_code == 200 and attempt.response_excerpt == "status 200 for request 1" and attempt.error == ""
    assert attempt.duration_ms > 0


def test_500s_are_retried_until_the_receiver_answers(shop, receiver, eager, django_capture_on_commit_callbacks):
    project, owner, endpoint = shop
    webhook, secret = hook(shop, receiver, events=["label.moved"])
    prompt = prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q", endpoint=endpoint)
    receiver.statuses = [500, 503]

    with django_capture_on_commit_callbacks(execute=True):
        prompts.label_move(prompt=prompt, actor=owner, label="production", version=1)

    assert len(receiver.requests) == 3
    deliveries = {request["headers"]["X-Promptlab-Delivery"] for request in receiver.requests}
    assert len(deliveries) == 1  # one delivery, attempted three times
    assert all(verify(secret, request["body"], request["headers"]["X-Promptlab-Signature"]) for request in receiver.requests)
    assert json.loads(receiver.requests[0]["body"])["data"] | {"url": None} == {
        "prompt": "faq", "label": "production", "from_version": None, "to_version": 1, "rollback": False, "message": "",
        "actor": "owner@example.com", "url": None,
    }  # fmt: skip
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 3
    log = list(delivery.attempt_log.values_list("number", "status_code", "error", "response_excerpt"))
    assert log == [(1, 500, "HTTP 500", "status 500 for request 1"), (2, 503, "HTTP 503", "status 503 for request 2"),
                   (3, 200, "", "status 200 for request 3")]  # fmt: skip


def test_backoff_doubles_up_to_its_cap_and_the_attempts_stop_at_the_maximum(shop, receiver, settings):
    settings.WEBHOOK_BACKOFF_SECONDS, settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_MAX_ATTEMPTS = 30, 100, 3
    assert [webhooks.backoff_seconds(attempt) for attempt in (1, 2, 3, 4)] == [30, 60, 100, 100]
    webhook = WebhookFactory(project=shop[0], url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000001",
                                              payload={"hello": "world"})  # fmt: skip
    receiver.statuses = [500, 502, 504]

    first = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)
    delivery.refresh_from_db()
    assert (first.status, first.retry_in, first.next_attempt) == ("pending", 30, 2)
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=2).retry_in == 60
    last = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=3)

    delivery.refresh_from_db()
    assert (last.status, last.retry_in) == ("failed", None)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3 and delivery.finished_at
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [500, 502, 504]


def test_running_an_attempt_twice_sends_once(shop, receiver):
    webhook = WebhookFactory(project=shop[0], url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000002",
                                              payload={})  # fmt: skip

    tasks.webhook_deliver.apply(args=[str(delivery.pk), 1])
    tasks.webhook_deliver.apply(args=[str(delivery.pk), 1])  # a duplicate message

    assert len(receiver.requests) == 1 and WebhookAttempt.objects.count() == 1


def test_a_refusal_or_a_redirect_fails_at_once_and_a_timeout_is_retried(shop, receiver, settings):
    webhook = WebhookFactory(project=shop[0], url=receiver.url)

    def attempt(status=None, **fields):
        delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000003",
                                                  payload={})  # fmt: skip
        if status:
            receiver.statuses = [status]
        outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)
        return outcome, delivery.attempt_log.get()

    outcome, log = attempt(403)
    assert outcome.status == "failed" and log.status_code == 403  # the receiver refused: trying again would not help

    receiver.location = "http://10.0.0.1/elsewhere"
    outcome, log = attempt(302)
    assert outcome.status == "failed" and log.status_code == 302 and len(receiver.requests) == 2  # not followed
    receiver.location = None

    outcome, log = attempt(429)
    assert outcome.status == "pending"

    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    outcome, log = attempt()
    assert outcome.status == "pending" and outcome.retry_in is not None
    assert log.status_code is None and "timed out" in log.error


def test_only_allowed_hosts_are_ever_called(shop, receiver, settings):
    project, owner, _ = shop
    for url, problem in [("http://169.254.169.254/latest/meta-data", "not in PROMPTLAB_WEBHOOK_HOSTS"),
                         ("ftp://127.0.0.1/hook", r"is not an http\(s\) URL"),
                         ("http://user:pw@127.0.0.1/hook", "no credentials")]:  # fmt: skip
        with pytest.raises(Invalid, match=problem):
            webhooks.webhook_create(project=project, actor=owner, name="x", url=url, events=["label.moved"])
    with pytest.raises(Invalid, match="Choose one or more"):
        webhooks.webhook_create(project=project, actor=owner, name="x", url=receiver.url, events=[])

    settings.PROMPTLAB_WEBHOOK_HOSTS = ["*.example.com"]
    webhook, _ = webhooks.webhook_create(project=project, actor=owner, name="x", url="https://hooks.example.com/in", events=["label.moved"])
    assert webhook.url == "https://hooks.example.com/in"

    # A host taken off the list after the webhook was saved is not called either.
    stale = WebhookFactory(project=project, url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=stale, event="label.moved", event_id="00000000-0000-0000-0000-000000000004", payload={})
    outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)
    assert outcome.status == "failed" and receiver.requests == []
    assert "not in PROMPTLAB_WEBHOOK_HOSTS" in delivery.attempt_log.get().error


def test_only_allowed_ports_are_ever_called(shop, receiver, settings):
    project, owner, _ = shop
    settings.PROMPTLAB_WEBHOOK_PORTS = ["443"]
    port = receiver.server.server_port
    with pytest.raises(Invalid, match=rf"The port {port} is not in PROMPTLAB_WEBHOOK_PORTS \(allowed: 443\)"):
        webhooks.webhook_create(project=project, actor=owner, name="x", url=receiver.url, events=["label.moved"])
    settings.PROMPTLAB_WEBHOOK_HOSTS = ["*.example.com"]
    webhooks.webhook_create(project=project, actor=owner, name="x", url="https://hooks.example.com/in", events=["label.moved"])  # 443
    with pytest.raises(Invalid, match="The port 80 is not in PROMPTLAB_WEBHOOK_PORTS"):
        webhooks.webhook_create(project=project, actor=owner, name="y", url="http://hooks.example.com/in", events=["label.moved"])

    # A webhook saved before its port was taken off the list is not called either.
    settings.PROMPTLAB_WEBHOOK_HOSTS = ["127.0.0.1"]
    stale = WebhookFactory(project=project, url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=stale, event="label.moved", event_id="00000000-0000-0000-0000-000000000006", payload={})
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1).status == "failed"
    assert receiver.requests == [] and f"port {port} is not in" in delivery.attempt_log.get().error

    settings.PROMPTLAB_WEBHOOK_PORTS = ["443", str(port)]
    again = WebhookDelivery.objects.create(webhook=stale, event="label.moved", event_id="00000000-0000-0000-0000-000000000007", payload={})
    assert webhooks.webhook_delivery_attempt(delivery_id=again.pk, attempt=1).status == "succeeded"


def test_a_name_that_resolves_to_a_private_address_is_never_called(shop, receiver, settings):
    project, owner, _ = shop
    settings.PROMPTLAB_WEBHOOK_HOSTS = ["*"]
    with pytest.raises(Invalid, match=r"127.0.0.1 is not a public address \(loopback\)"):
        webhooks.webhook_create(project=project, actor=owner, name="x", url=receiver.url, events=["label.moved"])
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    webhook, _ = webhooks.webhook_create(project=project, actor=owner, name="x", url=by_name, events=["label.moved"])  # names pass
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000008", payload={})

    outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)

    assert outcome.status == "failed" and receiver.requests == []  # refused for good: no retry
    error = delivery.attempt_log.get().error
    assert error.startswith("Nothing was sent: The host 'localhost' resolves to ") and "not a public address (loopback)" in error


def test_the_delivery_log_keeps_200_characters_of_the_answer(shop, receiver):
    webhook = WebhookFactory(project=shop[0], url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000009", payload={})
    receiver.body = ("é" + "x" * 299).encode() * 10  # 3,000 characters

    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)

    assert delivery.attempt_log.get().response_excerpt == "é" + "x" * 199


def test_only_enabled_webhooks_subscribed_to_the_event_get_it(shop, receiver, eager, django_capture_on_commit_callbacks):
    project, owner, endpoint = shop
    hook(shop, receiver, events=["label.moved"])
    WebhookFactory(project=project, url=receiver.url, enabled=False)
    WebhookFactory(url=receiver.url)  # another project's

    with django_capture_on_commit_callbacks(execute=True):
        prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q", endpoint=endpoint)

    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_approvals_are_announced(shop, receiver, eager, django_capture_on_commit_callbacks):
    project, owner, endpoint = shop
    hook(shop, receiver, events=["approval.requested", "approval.decided"])
    editor = MembershipFactory(project=project, role=Role.EDITOR, user__email="pm@example.com").user
    prompt = prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q", endpoint=endpoint)

    with django_capture_on_commit_callbacks(execute=True):
        approval = approvals.approval_propose(prompt=prompt, actor=editor, version=1, message="Ship it")
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_approve(approval=approval, actor=owner, comment="Looks good")

    requested, decided = [json.loads(request["body"]) for request in receiver.requests]
    assert requested["event"] == "approval.requested" and requested["data"]["status"] == "pending"
    assert requested["data"]["proposed_by"] == "pm@example.com" and requested["data"]["message"] == "Ship it"
    assert decided["event"] == "approval.decided"
    assert (decided["data"]["status"], decided["data"]["decided_by"], decided["data"]["comment"]) == ("approved", "owner@example.com", "Looks good")


def test_a_broken_receiver_never_breaks_saving_a_prompt(shop, eager, django_capture_on_commit_callbacks, monkeypatch):
    project, owner, endpoint = shop
    WebhookFactory(project=project, url="http://127.0.0.1:9/closed")  # nothing listens on port 9
    monkeypatch.setattr(webhooks, "webhook_event_emit", lambda **_: 1 / 0)

    with django_capture_on_commit_callbacks(execute=True):
        prompt = prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q", endpoint=endpoint)

    assert prompt.version == 1


# --- The admin -------------------------------------------------------------------------------


def test_the_admin_shows_the_secret_once_and_the_delivery_log(shop, receiver, client):
    project, owner, _ = shop
    client.force_login(owner)

    response = client.post("/admin/governance/webhook/add/", {
        "project": project.pk, "name": "Slack #releases", "url": receiver.url, "events": ["label.moved", "approval.decided"], "enabled": "on",
    })  # fmt: skip

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    webhook = Webhook.objects.get()
    shown = BeautifulSoup(response.content, "html.parser").select_one("code.webhook-secret").get_text()
    assert shown == webhook.secret and shown.startswith("whsec_")
    assert webhook.events == ["label.moved", "approval.decided"] and webhook.history.get().history_user == owner
    change_page = client.get(f"/admin/governance/webhook/{webhook.pk}/change/").content.decode()
    assert webhook.secret not in change_page

    refused = client.post("/admin/governance/webhook/add/", {"project": project.pk, "name": "x", "url": "https://evil.example.net/",
                                                               "events": ["label.moved"], "enabled": "on"})  # fmt: skip
    assert "not in PROMPTLAB_WEBHOOK_HOSTS" in refused.content.decode() and Webhook.objects.count() == 1

    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", event_id="00000000-0000-0000-0000-000000000005", payload={})
    receiver.statuses = [500]
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=1)
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, attempt=2)
    log = BeautifulSoup(client.get("/admin/governance/webhookdelivery/").content, "html.parser")
    assert log.select_one("td.field-status").get_text() == "Succeeded" and log.select_one("td.field-last_status_code").get_text() == "200"
    detail = client.get(f"/admin/governance/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "status 500 for request 1" in detail and "status 200 for request 2" in detail


def test_other_members_see_no_webhooks_in_the_admin(shop, client):
    project, _, _ = shop
    WebhookFactory(project=project)
    editor = MembershipFactory(project=project, role=Role.EDITOR).user
    client.force_login(editor)

    assert client.get("/admin/governance/webhook/").status_code == 403


# --- A real worker ---------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_retries_after_500s_with_backoff(shop, receiver):
    project, owner, endpoint = shop
    webhook, secret = hook(shop, receiver, events=["prompt.version_created"])
    receiver.statuses = [500, 500]
    worker = start_worker(name="webhooks", WEBHOOK_BACKOFF_SECONDS="0.5")
    try:
        prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q", endpoint=endpoint)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).exists():
            time.sleep(0.2)
    finally:
        stop(worker)

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 3
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [attempt.status_code for attempt in attempts] == [500, 500, 200]
    gaps = [(later.started_at - earlier.started_at).total_seconds() for earlier, later in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0  # 0.5 s, then doubled
    assert all(verify(secret, request["body"], request["headers"]["X-Promptlab-Signature"]) for request in receiver.requests)
