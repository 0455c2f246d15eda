"""Webhook deliveries in the background, one attempt per task run; webhooks.py decides retries."""

from celery import shared_task

from evaluations.governance import webhooks


@shared_task(name="evaluations.webhook_deliver", bind=True, acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=75, max_retries=None)  # fmt: skip
def webhook_deliver(self, delivery_id: str, attempt: int = 1) -> None:
    """Make attempt number `attempt` of a webhook delivery; when another one is due, run
    again after the backoff webhooks.webhook_delivery_attempt computed (it caps the attempts,
    so Celery's own retry limit is off). A duplicate run finds the attempt taken and sends nothing."""
    outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery_id, attempt=attempt)
    if outcome.retry_in is not None:
        raise self.retry(args=(delivery_id, outcome.next_attempt), kwargs={}, countdown=outcome.retry_in)
