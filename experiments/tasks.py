from celery import shared_task
from celery.signals import worker_ready

from experiments import services


@shared_task(name="experiments.drain", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def experiment_drain(experiment_id: int) -> None:
    """Run an experiment's runs one after another; several at once give its concurrency."""
    services.experiment_drain(experiment_id=experiment_id)


@worker_ready.connect
def _resume_after_restart(**_):
    """A worker that starts picks up experiments whose drains died with another worker
    (SIGKILL loses the task; the runs it held come back when their lease expires)."""
    services.experiments_recover()
