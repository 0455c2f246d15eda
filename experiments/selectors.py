from django.shortcuts import get_object_or_404

from experiments.models import Experiment
from prompts import selectors as prompt_selectors


def experiment_for(*, user, pk: int) -> Experiment:
    """The experiment if the user may see its project, else 404 (existence is not revealed)."""
    visible = prompt_selectors.project_list_for(user=user).values("pk")
    return get_object_or_404(Experiment.objects.select_related("project", "dataset"), pk=pk, project__in=visible)
