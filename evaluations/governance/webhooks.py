"""Webhooks: a project's events POSTed to the URLs its admins registered, signed and retried.

Events: `prompt.version_created` and `label.moved` (the prompts layer announces both after
commit, see prompts.signals), `approval.requested` and `approval.decided` (approvals.py).

Every POST carries a JSON body `{"id", "event", "created_at", "project", "data"}` and:

    X-Promptlab-Event: label.moved
    X-Promptlab-Delivery: <this delivery's id, the same on every attempt>
    X-Promptlab-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with the secret>

A receiver verifies the signature over the raw body and refuses an old timestamp (replays);
docs/user-guide/shipping.md shows how. The body's `id` is the event's: the same for every webhook and every
redelivery, so a receiver can de-duplicate on it.

Retries: the task `evaluations.webhook_deliver` makes one attempt at a time; this module is
the one owner of what happens next. A 2xx is success; a timeout, a connection error, 408,
425, 429 or a 5xx may clear up, so another attempt follows after WEBHOOK_BACKOFF_SECONDS,
doubling, at most WEBHOOK_BACKOFF_MAX_SECONDS, up to WEBHOOK_MAX_ATTEMPTS attempts; any
other answer (a redirect included: they are not followed) fails the delivery at once. Every
attempt is logged with its status code, the first 200 characters of the response, the error
and duration.

Only hosts in PROMPTLAB_WEBHOOK_HOSTS on ports in PROMPTLAB_WEBHOOK_PORTS are ever called,
checked when a webhook is saved and again before each attempt, at public addresses unless the
host or address is listed exactly (promptlab.llm.outbound), so no internal address is reachable
unless an operator lists it.
"""

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import structlog
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from evaluations.governance.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from promptlab import dispatch
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import Invalid, validated
from promptlab.llm import outbound
from prompts.models import LabelMove, Prompt

logger = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Promptlab-Signature"
EXCERPT_CHARS = 200  # of a receiver's answer, kept in the delivery log
MAX_TIMEOUT_SECONDS = 30.0  # the task's soft time limit (60 s) must cover one attempt
LEASE_MARGIN_SECONDS = 15  # beyond the timeout: how long an attempt in flight holds its delivery
RETRYABLE_STATUSES = {408, 425, 429}
WEBHOOK_FIELDS = {"name", "url", "events", "enabled"}
HOSTS = "PROMPTLAB_WEBHOOK_HOSTS"


# --- Rules -----------------------------------------------------------------------------------


def webhook_url_error(url: str) -> str | None:
    """Why `url` may not be called, or None when it may (the SSRF guard)."""
    if error := outbound.url_error(url, setting=HOSTS):
        return error
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "Put no credentials in the URL: receivers check the signature instead."
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = [str(allowed) for allowed in settings.PROMPTLAB_WEBHOOK_PORTS]
    if "*" not in allowed and str(port) not in allowed:
        return f"The port {port} is not in PROMPTLAB_WEBHOOK_PORTS (allowed: {', '.join(allowed) or 'none'}). An operator must add it to that setting."  # fmt: skip
    return None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature: hex HMAC-SHA256 of "<timestamp>." + body, keyed with the secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# Not Celery's autoretry_for + retry_backoff: the delivery row records when its next attempt is
# due (next_attempt_at, in the delivery log) before the task retries, a delivery held by another
# worker waits out that worker's lease instead of a backoff step, and the backoff is settings in
# seconds (fractions too), read at each attempt. Celery computes its countdown inside the retry,
# from whole seconds fixed when the task is declared.
def backoff_seconds(attempt: int) -> float:
    """Seconds before the attempt after `attempt` (1-based): doubling, capped."""
    return min(settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _events(events) -> list[str]:
    """The events in their canonical order; unknown ones are left for the model's clean() to name."""
    events = list(events or [])
    return [event for event in WebhookEvent.values if event in events] + [e for e in events if e not in WebhookEvent.values]


# --- Services --------------------------------------------------------------------------------


@transaction.atomic
def webhook_create(*, project: Project, actor, name: str, url: str, events: list[str], enabled: bool = True) -> tuple[Webhook, str]:
    """Register a webhook; returns (webhook, secret). The secret is shown to people only now."""
    authorize(actor, project, Action.MANAGE)
    secret = _new_secret()
    webhook = Webhook(project=project, name=(name or "").strip() or url, url=url, events=_events(events), enabled=enabled,
                      secret=secret, created_by=actor)  # fmt: skip
    validated(webhook, "webhook")
    webhook._history_user, webhook._change_reason = actor, "Created"
    webhook.save()
    logger.info("governance.webhook_created", webhook_id=webhook.pk, project_id=project.pk, events=webhook.events)
    return webhook, secret


@transaction.atomic
def webhook_update(*, webhook: Webhook, actor, **fields) -> Webhook:
    """Change the name, URL, events or whether it is enabled; a save that changes nothing records nothing."""
    authorize(actor, webhook.project, Action.MANAGE)
    if unknown := set(fields) - WEBHOOK_FIELDS:
        raise Invalid(f"Unknown webhook fields: {', '.join(sorted(unknown))}.")
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    if "events" in fields:
        fields["events"] = _events(fields["events"])
    changed = sorted(field for field, value in fields.items() if getattr(webhook, field) != value)
    if not changed:
        return webhook
    for field, value in fields.items():
        setattr(webhook, field, value)
    validated(webhook, "webhook")
    webhook._history_user, webhook._change_reason = actor, f"Changed {', '.join(changed)}"
    webhook.save()
    return webhook


@transaction.atomic
def webhook_secret_rotate(*, webhook: Webhook, actor) -> tuple[Webhook, str]:
    """A new secret, effective for the next attempt; returns (webhook, secret)."""
    authorize(actor, webhook.project, Action.MANAGE)
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    webhook.secret = secret = _new_secret()
    webhook._history_user, webhook._change_reason = actor, "Secret rotated"
    webhook.save()
    logger.info("governance.webhook_secret_rotated", webhook_id=webhook.pk)
    return webhook, secret


@transaction.atomic
def webhook_delete(*, webhook: Webhook, actor) -> None:
    """Delete the webhook and its delivery log; its history stays for the audit log."""
    authorize(actor, webhook.project, Action.MANAGE)
    webhook._history_user = actor
    webhook.delete()
    logger.info("governance.webhook_deleted", webhook_id=webhook.pk)


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery, actor) -> WebhookDelivery:
    """Send a finished delivery's event again, as a new delivery with its own attempts (same event id)."""
    authorize(actor, delivery.webhook.project, Action.MANAGE)
    if delivery.status not in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
        raise Invalid("The delivery is still being attempted; wait for it to succeed or fail.")
    again = WebhookDelivery.objects.create(webhook=delivery.webhook, event=delivery.event, event_id=delivery.event_id,
                                           payload=delivery.payload)  # fmt: skip
    _enqueue_on_commit(again.pk)
    return again


# --- Emitting events -------------------------------------------------------------------------


def webhook_event_emit(*, project: Project, event: str, data: dict) -> list[WebhookDelivery]:
    """One delivery per enabled webhook of the project that subscribed to the event, each
    enqueued once the surrounding transaction (if any) commits."""
    webhooks = _subscribers(project.pk, event)
    if not webhooks:
        return []
    event_id = uuid.uuid4()
    payload = json.loads(json.dumps(
        {"id": str(event_id), "event": event, "created_at": timezone.now(), "project": {"slug": project.slug, "name": project.name},
         "data": data},
        cls=DjangoJSONEncoder,
    ))  # fmt: skip
    with transaction.atomic():
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(webhook=webhook, event=event, event_id=event_id, payload=payload) for webhook in webhooks
        )
        for delivery in deliveries:
            _enqueue_on_commit(delivery.pk)
    logger.info("governance.webhook_event", webhook_event=event, event_id=str(event_id), project_id=project.pk, deliveries=len(deliveries))
    return deliveries


def _subscribers(project_id: int, event: str) -> list[Webhook]:
    # Filtered here rather than in SQL: SQLite (the embedded default) has no JSON containment.
    return [webhook for webhook in Webhook.objects.filter(project_id=project_id, enabled=True) if event in webhook.events]


def _enqueue_on_commit(delivery_id) -> None:
    transaction.on_commit(lambda: _enqueue(delivery_id, 1))


def _enqueue(delivery_id, attempt: int) -> None:
    """Hand the attempt to a worker. With the broker down the delivery stays pending, and the
    sweeper sends it again (evaluations.governance.tasks.deliveries_recover)."""
    from evaluations.governance.tasks import webhook_deliver

    dispatch.send(webhook_deliver, str(delivery_id), attempt)


def absolute_url(path: str) -> str:
    """The URL people and receivers open: PROMPTLAB_BASE_URL and the path."""
    return f"{settings.BASE_URL}{path}"


def on_prompt_version_created(sender, *, prompt_id: int, version: int, **_) -> None:
    """prompts.signals.prompt_version_created receiver (sent after commit)."""
    try:
        record = Prompt.history.filter(id=prompt_id, version=version).select_related("history_user").first()
        if record is None or not _subscribers(record.project_id, WebhookEvent.PROMPT_VERSION_CREATED):
            return
        project = Project.objects.get(pk=record.project_id)
        webhook_event_emit(project=project, event=WebhookEvent.PROMPT_VERSION_CREATED, data={
            "prompt": record.name, "version": version, "message": record.history_change_reason or "",
            "author": record.history_user.email if record.history_user else None,
            "url": absolute_url(reverse("prompt_detail", args=[project.slug, record.name])),
        })  # fmt: skip
    except Exception:  # a webhook must never break saving a prompt
        logger.exception("governance.webhook_emit_failed", webhook_event="prompt.version_created", prompt_id=prompt_id)


def on_label_moved(sender, *, label_move_id: int, rollback: bool = False, **_) -> None:
    """prompts.signals.label_moved receiver (sent after commit)."""
    try:
        move = LabelMove.objects.select_related("prompt__project", "actor").filter(pk=label_move_id).first()
        if move is None or move.prompt is None or not _subscribers(move.prompt.project_id, WebhookEvent.LABEL_MOVED):
            return
        project = move.prompt.project
        webhook_event_emit(project=project, event=WebhookEvent.LABEL_MOVED, data={
            "prompt": move.prompt_name, "label": move.label, "from_version": move.from_version, "to_version": move.to_version,
            "rollback": rollback, "message": move.message, "actor": move.actor.email if move.actor else None,
            "url": absolute_url(reverse("prompt_detail", args=[project.slug, move.prompt_name])),
        })  # fmt: skip
    except Exception:
        logger.exception("governance.webhook_emit_failed", webhook_event="label.moved", label_move_id=label_move_id)


# --- Delivering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    status: str  # the delivery's status after this call; "" when there was nothing to do
    retry_in: float | None = None  # when set, call again with `next_attempt` after this many seconds
    next_attempt: int | None = None


@dataclass(frozen=True)
class _Answer:
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: float = 0.0
    refused: bool = False  # not sent at all: trying again would not change that

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return not self.refused  # timeouts and connection errors may clear up
        return self.status_code in RETRYABLE_STATUSES or self.status_code >= 500


def webhook_delivery_attempt(*, delivery_id, attempt: int) -> AttemptOutcome:
    """Make attempt number `attempt` of the delivery, if it is still due: claimed with a
    compare-and-set, so a duplicate task sends nothing. Logs the attempt and says whether
    (and when) another one follows."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=_timeout() + LEASE_MARGIN_SECONDS)
    # A delivery left "sending" by a worker that died is taken over once its lease is over.
    claimable = Q(status=DeliveryStatus.PENDING, attempts=attempt - 1) | Q(status=DeliveryStatus.SENDING, attempts=attempt, lease_until__lt=now)
    won = WebhookDelivery.objects.filter(claimable, pk=delivery_id).update(
        status=DeliveryStatus.SENDING, attempts=attempt, lease_until=lease_until
    )
    if not won:
        held = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, attempts=attempt)
        if (until := held.values_list("lease_until", flat=True).first()) is not None:
            # In flight elsewhere, or its worker died just now: look again when the lease is over.
            return AttemptOutcome(DeliveryStatus.SENDING, retry_in=max(1.0, (until - now).total_seconds()), next_attempt=attempt)
        logger.info("governance.webhook_attempt_taken", delivery_id=str(delivery_id), attempt=attempt)
        return AttemptOutcome("")
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    started = timezone.now()
    answer = _send(delivery)
    WebhookAttempt.objects.update_or_create(
        delivery=delivery, number=attempt,
        defaults={"started_at": started, "duration_ms": answer.duration_ms, "status_code": answer.status_code,
                  "response_excerpt": answer.excerpt, "error": answer.error},
    )  # fmt: skip
    if answer.ok:
        status, retry_in = DeliveryStatus.SUCCEEDED, None
    elif answer.retryable and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        status, retry_in = DeliveryStatus.PENDING, backoff_seconds(attempt)
    else:
        status, retry_in = DeliveryStatus.FAILED, None
    finished = None if status == DeliveryStatus.PENDING else timezone.now()
    next_at = timezone.now() + timedelta(seconds=retry_in) if retry_in is not None else None
    WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, attempts=attempt).update(
        status=status, lease_until=None, next_attempt_at=next_at, finished_at=finished
    )
    logger.info("governance.webhook_attempted", delivery_id=str(delivery_id), attempt=attempt, status=status,
                status_code=answer.status_code, error=answer.error[:200])  # fmt: skip
    return AttemptOutcome(status, retry_in=retry_in, next_attempt=attempt + 1 if retry_in is not None else None)


def _timeout() -> float:
    return min(settings.WEBHOOK_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)


def _send(delivery: WebhookDelivery) -> _Answer:
    """POST the delivery's payload, signed now. Never raises: every outcome is an answer."""
    webhook = delivery.webhook
    if not webhook.enabled:
        return _Answer(error="The webhook is disabled: nothing was sent.", refused=True)
    if error := webhook_url_error(webhook.url):
        return _Answer(error=f"Nothing was sent: {error}", refused=True)
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json", "User-Agent": "promptlab-webhooks/1", "X-Promptlab-Event": delivery.event,
        "X-Promptlab-Delivery": str(delivery.pk), SIGNATURE_HEADER: f"t={timestamp},v1={signature(webhook.secret, timestamp, body)}",
    }  # fmt: skip
    start = time.monotonic()
    # A redirect could point anywhere, past the allowlist: it is an answer (a failure), not followed.
    try:
        with outbound.http_client(setting=HOSTS, timeout=_timeout(), refuse_redirects=False) as client:
            with client.stream("POST", webhook.url, content=body, headers=headers) as response:
                status, excerpt = response.status_code, _excerpt(response)
    except outbound.OutboundRefused as exc:  # the name resolved to an address that may not be called
        return _Answer(error=f"Nothing was sent: {exc.message}", duration_ms=_since(start), refused=True)
    except httpx.HTTPError as exc:  # timeout, refused, reset, garbled
        return _Answer(error=f"{type(exc).__name__}: {exc}", duration_ms=_since(start))
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    return _Answer(status, excerpt, error=error, duration_ms=_since(start))


def _excerpt(response: httpx.Response) -> str:
    """The start of the answer: at most EXCERPT_CHARS characters, reading no more than it takes."""
    read = b""
    try:
        for chunk in response.iter_bytes():
            read += chunk
            if len(read) >= EXCERPT_CHARS * 4:
                break
    except httpx.HTTPError:
        pass
    return read.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _since(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)
