"""Evaluations listen to experiments here: a run that finished is scored in the background."""

import structlog

from evaluations.models import ExperimentEvaluator

logger = structlog.get_logger(__name__)


def score_finished_run(sender, run_id: int, **kwargs) -> None:
    """Enqueue scoring when the run's experiment has evaluators (run_done is sent after commit).
    A broker failure is logged, not raised into the runner: re-scoring the experiment catches up."""
    from evaluations.tasks import score_run

    try:
        if ExperimentEvaluator.objects.filter(experiment__runs=run_id, evaluator__enabled=True).exists():
            score_run.delay(run_id)
    except Exception:
        logger.exception("evaluations.score_enqueue_failed", run_id=run_id)
