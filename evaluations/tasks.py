"""Scoring in the background. Judges and embeddings call models, so these run on the "llm" queue."""

import structlog
from celery import shared_task

from evaluations import services

logger = structlog.get_logger(__name__)

MAX_RETRIES = 5  # after a transient failure: about 30 s, 1, 2, 4 and 8 min later


@shared_task(name="evaluations.score_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=280, time_limit=300, max_retries=MAX_RETRIES)  # fmt: skip
def score_run(self, run_id: int, evaluator_ids: list[int] | None = None, retry_errors: bool = False) -> None:
    """Score a finished run. Scores that errored transiently (the gateway gave up on a 5xx,
    a rate limit, an open circuit) are recorded as errored, then tried again by a Celery
    retry with a capped, growing countdown, up to MAX_RETRIES times."""
    outcome = services.score_run(run_id=run_id, evaluator_ids=evaluator_ids, retry_errors=retry_errors)
    if not outcome.retry_ids:
        return
    if self.request.retries >= MAX_RETRIES:
        logger.warning("evaluations.score_retries_exhausted", run_id=run_id, evaluator_ids=list(outcome.retry_ids))
        return
    raise self.retry(
        args=(run_id, list(outcome.retry_ids), False), kwargs={},
        countdown=services.retry_countdown(self.request.retries, outcome.retry_after),
    )  # fmt: skip


@shared_task(name="evaluations.score_runs", acks_late=True, reject_on_worker_lost=True, soft_time_limit=280, time_limit=300)
def score_runs(run_ids: list[int], evaluator_ids: list[int] | None = None, retry_errors: bool = False) -> None:
    """Score a chunk of runs (re-scoring an experiment); what does not fit the time limit continues in a new task."""
    services.score_runs(run_ids=run_ids, evaluator_ids=evaluator_ids, retry_errors=retry_errors)


@shared_task(name="evaluations.rescore_experiment", acks_late=True, reject_on_worker_lost=True, soft_time_limit=110, time_limit=120)
def rescore_experiment(experiment_id: int, evaluator_ids: list[int] | None = None, retry_errors: bool = True) -> None:
    """Split an experiment's done runs into chunks, one scoring task each."""
    services.experiment_rescore_fan_out(experiment_id=experiment_id, evaluator_ids=evaluator_ids, retry_errors=retry_errors)
