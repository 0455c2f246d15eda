"""Webhook deliveries in the background, one attempt per task run; webhooks.py decides retries,
and the sweeper sends again what the broker lost."""

from celery import shared_task
from django.db.models import Q

from evaluations.governance import webhooks
from evaluations.governance.models import DeliveryStatus, WebhookDelivery
from promptlab import dispatch, sweeper


@shared_task(name="evaluations.webhook_deliver", bind=True, acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=75, max_retries=None)  # fmt: skip
def webhook_deliver(self, delivery_id: str, attempt: int = 1) -> None:
    """Make attempt number `attempt` of a webhook delivery; when another one is due, run
    again after the backoff webhooks.webhook_delivery_attempt computed (it caps the attempts,
    so Celery's own retry limit is off). A duplicate run finds the attempt taken and sends nothing."""
    outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery_id, attempt=attempt)
    if outcome.retry_in is not None:
        raise self.retry(args=(delivery_id, outcome.next_attempt), kwargs={}, countdown=outcome.retry_in)


@sweeper.recovery
def deliveries_recover(stale_before) -> int:
    """Send again the deliveries whose message was lost with the broker: pending and due since
    `stale_before`, or sending with a lease over since then (their worker died). Returns how many."""
    due = Q(status=DeliveryStatus.PENDING) & (Q(next_attempt_at__lt=stale_before) | Q(next_attempt_at=None, created_at__lt=stale_before))
    dead = Q(status=DeliveryStatus.SENDING, lease_until__lt=stale_before)
    count = 0
    for delivery_id, status, attempts in WebhookDelivery.objects.filter(due | dead).values_list("pk", "status", "attempts"):
        dispatch.send(webhook_deliver, str(delivery_id), attempts + 1 if status == DeliveryStatus.PENDING else attempts)
        count += 1
    return count
