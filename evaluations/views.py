from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from evaluations import comparison
from experiments import selectors as experiment_selectors


@require_GET
@login_required
def experiment_comparison(request, pk: int):
    """Variants side by side in numbers: pass rates, scores, latency and cost with their
    intervals, and a verdict in plain words for every pair."""
    experiment = experiment_selectors.experiment_for(user=request.user, pk=pk)
    result = comparison.experiment_comparison(experiment=experiment)
    return render(request, "evaluations/comparison.html", {"experiment": experiment, "result": result})
