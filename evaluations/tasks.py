"""Scoring in the background. Judges and embeddings call models, so these run on the "llm" queue."""

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from evaluations import services

MAX_RETRIES = 5  # after a transient failure: 30 s, 1, 2, 4 and 8 min later


class ScoresToRetry(Exception):
    """Scores errored for a reason that may clear up; they stay recorded as errored until a retry scores them."""


@shared_task(name="evaluations.score_run", bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300,
             autoretry_for=(ScoresToRetry,), throws=(ScoresToRetry,), max_retries=MAX_RETRIES, retry_backoff=30,
             retry_backoff_max=600, retry_jitter=False)  # fmt: skip
def score_run(self, run_id: int, evaluator_ids: list[int] | None = None, retry_errors: bool = False) -> None:
    """Score a finished run. Scores that errored transiently (the gateway gave up on a 5xx,
    a rate limit, an open circuit) are recorded as errored, and Celery runs the task again with
    a doubling backoff, up to MAX_RETRIES times; then it fails with ScoresToRetry, an expected error."""
    outcome = services.score_run(run_id=run_id, evaluator_ids=evaluator_ids, retry_errors=retry_errors)
    if not outcome.retry_ids:
        return
    error = ScoresToRetry(f"run {run_id}: evaluators {list(outcome.retry_ids)} errored transiently")
    if outcome.retry_after:
        raise self.retry(exc=error, countdown=retry_countdown(self.request.retries, outcome.retry_after))
    raise error


def retry_countdown(retries: int, retry_after: float | None) -> float:
    """Seconds before score_run runs again once it has been retried `retries` times: its Celery
    backoff, lengthened to what the provider asked for (Retry-After), which retry_backoff cannot do."""
    backoff = get_exponential_backoff_interval(int(score_run.retry_backoff), retries, score_run.retry_backoff_max, score_run.retry_jitter)
    return min(score_run.retry_backoff_max, max(backoff, retry_after or 0))


@shared_task(name="evaluations.score_runs", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def score_runs(run_ids: list[int], evaluator_ids: list[int] | None = None, retry_errors: bool = False) -> None:
    """Score a chunk of runs (re-scoring an experiment); what does not fit the time limit continues in a new task."""
    services.score_runs(run_ids=run_ids, evaluator_ids=evaluator_ids, retry_errors=retry_errors)


@shared_task(name="evaluations.rescore_experiment", acks_late=True, reject_on_worker_lost=True, soft_time_limit=110, time_limit=120)
def rescore_experiment(experiment_id: int, evaluator_ids: list[int] | None = None, retry_errors: bool = True) -> None:
    """Split an experiment's done runs into chunks, one scoring task each."""
    services.experiment_rescore_fan_out(experiment_id=experiment_id, evaluator_ids=evaluator_ids, retry_errors=retry_errors)
