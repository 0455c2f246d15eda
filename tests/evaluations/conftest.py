"""An experiment with two contains-evaluators and thirty items; variant_runs() adds a
variant whose runs pass or fail the second evaluator item by item."""

import pytest

from evaluations import services
from evaluations.models import Score, ScoreStatus
from experiments.models import RunStatus
from promptlab.accounts.models import Role
from tests.factories import DatasetItemFactory, ExperimentFactory, MembershipFactory, RunFactory, VariantFactory


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def experiment(owner):
    experiment = ExperimentFactory(project=owner.project, status="finished")
    checks = [
        services.evaluator_create(project=owner.project, actor=owner.user, name=name, kind="contains", config={"value": name})
        for name in ("refund", "sorry")
    ]
    services.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=checks)
    experiment.checks = checks
    experiment.items = [DatasetItemFactory(dataset=experiment.dataset) for _ in range(30)]
    return experiment


def variant_runs(experiment, name: str, passes: list[bool], *, errored: set[int] = frozenset(), failed: set[int] = frozenset(),
                 outputs: list[str] | None = None):  # fmt: skip
    """One run per item; the item passes both evaluators or fails the second one."""
    variant = VariantFactory(experiment=experiment, name=name)
    for index, (item, passed) in enumerate(zip(experiment.items, passes, strict=False)):
        run = RunFactory(experiment=experiment, variant=variant, item=item, latency_ms=100 + index,
                         status=RunStatus.FAILED if index in failed else RunStatus.DONE,
                         output=outputs[index] if outputs else f"{name} answers item {index}")  # fmt: skip
        if index in failed:
            continue
        first, second = experiment.checks
        Score.objects.create(run=run, evaluator=first, evaluator_version=first.version, status=ScoreStatus.OK, value=1.0, passed=True)
        if index in errored:
            Score.objects.create(run=run, evaluator=second, evaluator_version=second.version, status=ScoreStatus.ERRORED)
        else:
            Score.objects.create(run=run, evaluator=second, evaluator_version=second.version, status=ScoreStatus.OK,
                                 value=1.0 if passed else 0.0, passed=passed)  # fmt: skip
    return variant
