from celery import shared_task

from prompts import services


@shared_task(name="prompts.invoke", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def prompt_invoke(call_id: str) -> None:
    """Make one call recorded by the invoke API; a second delivery of the same call does nothing."""
    services.prompt_call_execute(call_id=call_id)
