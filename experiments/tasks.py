from celery import shared_task
from celery.signals import worker_init, worker_ready

from experiments import playground, services
from promptlab.llm import gateway


@shared_task(name="experiments.drain", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def experiment_drain(experiment_id: int) -> None:
    """Run an experiment's runs one after another; several at once give its concurrency."""
    services.experiment_drain(experiment_id=experiment_id)


@worker_ready.connect
def _resume_after_restart(**_):
    """A worker that starts picks up experiments whose drains died with another worker
    (SIGKILL loses the task; the runs it held come back when their lease expires)."""
    services.experiments_recover()


@shared_task(name="experiments.playground_call", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def playground_call(call_id: int) -> None:
    """Make one playground call; a second delivery of the same call does nothing."""
    playground.playground_call_execute(call_id=call_id)


@worker_init.connect
def _load_litellm(**_):
    """LiteLLM takes seconds to import: a worker pays it once at start (before prefork forks
    its children) rather than inside the first run it claims."""
    gateway.prepared_litellm()
