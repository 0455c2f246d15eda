"""Evaluations' part in creating an experiment: the evaluators that score its runs, offered
by the experiment form and the create API through experiments.extensions."""

from evaluations import selectors, services
from experiments.extensions import Attachment


def _attach(*, experiment, actor, objects) -> None:
    services.experiment_evaluators_set(experiment=experiment, actor=actor, evaluators=objects)


EVALUATORS = Attachment(
    name="evaluators",
    label="Evaluators",
    help_text="The evaluators that score its runs, by name or id.",
    choices=lambda project: selectors.evaluator_list(project=project, enabled_only=True),
    resolve=lambda project, refs: selectors.evaluators_named(project=project, refs=refs),
    attach=_attach,
)
