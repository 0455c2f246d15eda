from celery import shared_task

from promptlab import workers


@shared_task(name="promptlab.worker_ping_answer", acks_late=True, reject_on_worker_lost=True, soft_time_limit=10, time_limit=20)
def worker_ping_answer(ping_id: str) -> None:
    """Answer a liveness ping by writing to the database."""
    workers.worker_ping_answer(ping_id=ping_id)
