from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from experiments import selectors, services
from experiments.models import ExperimentStatus


@require_GET
@login_required
def experiment_detail(request, pk: int):
    """The experiment's progress; for htmx only the fragment, which polls until it is over."""
    experiment = selectors.experiment_for(user=request.user, pk=pk)
    counts = services.experiment_counts(experiment)
    finished = counts["done"] + counts["failed"] + counts["skipped"] + counts["cancelled"]
    eta = None
    if experiment.status == ExperimentStatus.RUNNING and experiment.started_at and finished:
        elapsed = (timezone.now() - experiment.started_at).total_seconds()
        eta = round(elapsed / finished * (counts["total"] - finished))
    context = {
        "experiment": experiment, "counts": counts, "finished": finished, "eta_seconds": eta,
        "percent": round(100 * finished / counts["total"]) if counts["total"] else 0,
        "polling": experiment.status == ExperimentStatus.RUNNING,
    }  # fmt: skip
    template = "experiments/partials/experiment-progress.html" if request.htmx else "experiments/experiment_detail.html"
    return render(request, template, context)
