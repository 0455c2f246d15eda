"""Evaluations listen to experiments here: a run that finished is scored in the background, and so
are the done runs of an item whose own assertions changed."""

import structlog
from django.db.models import Q

from experiments.models import Run, RunStatus
from promptlab import dispatch

logger = structlog.get_logger(__name__)


def score_finished_run(sender, run_id: int, **kwargs) -> None:
    """Enqueue scoring when something scores the run: its experiment's evaluators or its item's
    own assertions (run_done is sent after commit). A message lost with the broker is sent again
    by the sweeper (evaluations.tasks.scoring_recover)."""
    from evaluations.tasks import score_run

    scored = Q(experiment__evaluator_links__evaluator__enabled=True) | ~Q(item__assertions=[])
    if Run.objects.filter(scored, pk=run_id).exists():
        dispatch.send(score_run, run_id)


def score_item_runs(sender, item_id: int, **kwargs) -> None:
    """An item's own assertions changed (item_assertions_changed is sent after commit): score its
    done runs with them. Scores that exist are kept, so only the new checks are computed; a broker
    failure is logged, and the sweeper sends them again."""
    from evaluations.services import RESCORE_CHUNK
    from evaluations.tasks import score_runs

    run_ids = list(Run.objects.filter(item_id=item_id, status=RunStatus.DONE).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(run_ids), RESCORE_CHUNK):
        dispatch.send(score_runs, run_ids[start : start + RESCORE_CHUNK])


def scores_reopen_for_budget(sender, experiment_id: int, **kwargs) -> None:
    """The experiment was resumed (experiment_resumed is sent after commit), its budget raised,
    say: scores that errored because the budget was reached are scored again."""
    from evaluations.budget import budget_scores_reopen

    try:
        budget_scores_reopen(experiment_id=experiment_id)
    except Exception:
        logger.exception("evaluations.score_enqueue_failed", experiment_id=experiment_id)
