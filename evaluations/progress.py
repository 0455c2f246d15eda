"""How far scoring has come: of an experiment's answered runs, how many have their scores in.

The grading rule decides: a run is still to score while its grade is pending. An errored
score is in (a retry may change it later, but until then the run's verdict is "errored"), and
a failed call has nothing to score. evaluations registers these with experiments.extensions,
which moves an experiment from scoring to finished by them and shows them on its pages and API.
"""

from django.db.models import Exists, OuterRef

from evaluations import grading
from evaluations.grading import ExperimentChecks
from evaluations.models import Score, ScoreStatus
from experiments.extensions import ScoringProgress
from experiments.models import Experiment, RunStatus


def scoring_progress(experiment: Experiment, *, checks: ExperimentChecks | None = None) -> ScoringProgress:
    """Answered runs whose grade is no longer pending, out of all answered runs."""
    checks = grading.experiment_checks(experiment) if checks is None else checks
    answered = [run for run in grading.experiment_grades(experiment, checks=checks) if run.status == RunStatus.DONE]
    return ScoringProgress(scored=sum(not run.grade.pending for run in answered), to_score=len(answered), grades=checks.grades_anything)


def scores_to_come(experiment: Experiment) -> bool:
    """Whether an answered run still waits for a score. Scoring asks after its scores while the
    experiment is scoring, so one likely run is graded first: one with no score at all, or
    none yet from an attached evaluator's current version. While a backlog is being scored
    (or re-scored) that answers at once; only the last scores grade every run."""
    checks = grading.experiment_checks(experiment)
    waiting = ~Exists(Score.objects.filter(run=OuterRef("pk")))
    for spec in checks.attached:
        scored = Score.objects.filter(run=OuterRef("pk"), evaluator_id=spec.evaluator_id, evaluator_version=spec.version)
        waiting |= ~Exists(scored.exclude(status=ScoreStatus.PENDING))
    likely = list(experiment.runs.filter(waiting, status=RunStatus.DONE).order_by().values_list("pk", flat=True)[:1])
    if likely and grading.experiment_grades(experiment, run_ids=likely, checks=checks)[0].grade.pending:
        return True
    return scoring_progress(experiment, checks=checks).pending > 0
