"""The comparison page of an experiment: statistics and verdicts, and the matrix of items x
variants with scores, ratings, filters, diffs and export."""

import csv
import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from evaluations import comparison, matrix, progress, selectors, services
from experiments import selectors as experiment_selectors
from experiments import services as experiment_services
from experiments.models import DatasetItem, ExperimentStatus, Run
from promptlab.csv_cells import csv_cell
from promptlab.errors import DomainError, Invalid
from promptlab.htmx import page_or_fragment
from prompts import diff


def _experiment(request, pk: int):
    experiment = experiment_selectors.experiment_for(user=request.user, pk=pk)
    variants = experiment_selectors.variant_list(experiment=experiment)
    evaluators = list(selectors.evaluators_of_experiment(experiment_id=experiment.pk))
    return experiment, variants, evaluators


@require_GET
@login_required
def experiment_comparison(request, pk: int):
    """The page, or for htmx the #matrix fragment: one page of items x variants, filtered and
    sorted as the query string says. Statistics load in their own fragment (#stats-panel)."""
    experiment, variants, evaluators = _experiment(request, pk)
    context = {"experiment": experiment, "variants": variants, "evaluators": evaluators, "params": request.GET,
               "scale": matrix.rating_scale(experiment=experiment), "rate_base": _rate_base(experiment),
               "variant_ratings": _variant_ratings(experiment, variants)}  # fmt: skip
    try:
        query = matrix.matrix_query_from(request.GET, variants=variants, evaluators=evaluators)
    except Invalid as exc:
        return page_or_fragment(request, "evaluations/comparison.html", {**context, "error": exc.message}, status=400)
    page, rows = matrix.matrix_page(experiment=experiment, query=query, variants=variants, user=request.user)
    context |= {"query": query, "page": page, "rows": rows, "querystring": _without_page(request.GET)}
    return page_or_fragment(
        request, "evaluations/comparison.html", context, fragment_template="evaluations/partials/matrix.html", target="matrix"
    )  # fmt: skip


def _rate_base(experiment) -> str:
    """The rating URLs of the experiment's runs, without the run: reversed once per page, not per cell."""
    return reverse("run_rate", args=[experiment.pk, 0]).removesuffix("0/rating/")


def _without_page(params) -> str:
    params = params.copy()
    params.pop("page", None)
    return params.urlencode()


def _variant_ratings(experiment, variants) -> list[tuple]:
    counts = matrix.variant_ratings(experiment=experiment)
    return [(variant, counts.get(variant.pk, {"count": 0, "mean": None})) for variant in variants]


@require_GET
@login_required
def experiment_stats(request, pk: int):
    """The #stats-panel fragment: per-variant numbers, verdicts per pair, rater agreement."""
    experiment = experiment_selectors.experiment_for(user=request.user, pk=pk)
    result = comparison.experiment_comparison(experiment=experiment)
    return render(request, "evaluations/partials/stats-panel.html", {"experiment": experiment, "result": result})


@require_GET
@login_required
def experiment_scoring_progress(request, pk: int):
    """The #scoring-progress fragment: calls made and runs scored. It polls while the experiment
    runs or is being scored; once it is over it stops and tells the page (HX-Trigger:
    scores-changed) to reload the statistics and the matrix, which then hold every score."""
    experiment = experiment_selectors.experiment_for(user=request.user, pk=pk)
    active = experiment.status in (ExperimentStatus.RUNNING, ExperimentStatus.SCORING)
    counts = experiment_services.experiment_counts(experiment)
    context = {"experiment": experiment, "active": active, "scoring": progress.scoring_progress(experiment), "counts": counts,
               "runs_over": counts["total"] - counts["pending"] - counts["running"]}  # fmt: skip
    response = render(request, "evaluations/partials/scoring-progress.html", context)
    if not active:
        response["HX-Trigger"] = "scores-changed"
    return response


@require_GET
@login_required
def experiment_ratings(request, pk: int):
    """The #rating-summary fragment: ratings per variant; it reloads after each rating."""
    experiment, variants, _ = _experiment(request, pk)
    context = {"experiment": experiment, "variant_ratings": _variant_ratings(experiment, variants)}
    return render(request, "evaluations/partials/rating-summary.html", context)


@require_POST
@login_required
def run_rate(request, pk: int, run_id: int):
    """Rate a run (any member may); answers with the run's refreshed cell and tells the page
    that ratings changed, so the aggregates reload."""
    experiment, variants, _ = _experiment(request, pk)
    run = get_object_or_404(Run, pk=run_id, experiment=experiment)
    error = ""
    try:
        value = int(request.POST.get("value", ""))
        services.rating_set(run=run, actor=request.user, scale=request.POST.get("scale", ""), value=value,
                            comment=request.POST.get("comment", ""))  # fmt: skip
    except ValueError:
        error = "Choose a rating."
    except DomainError as exc:
        error = exc.message
    variant = next(variant for variant in variants if variant.pk == run.variant_id)
    item = DatasetItem.objects.get(pk=run.item_id)
    [row] = matrix.matrix_rows(experiment=experiment, items=[item], variants=[variant], user=request.user)
    context = {"experiment": experiment, "row": row, "cell": row.cells[0], "scale": matrix.rating_scale(experiment=experiment),
               "rate_base": _rate_base(experiment), "error": error}  # fmt: skip
    response = render(request, "evaluations/partials/matrix-cell.html", context)
    if not error:
        response["HX-Trigger"] = "ratings-changed"
    return response


@require_GET
@login_required
def item_diff(request, pk: int, item_id: int):
    """The #diff-<item> fragment: a word-level diff of two variants' answers for the item."""
    experiment, variants, _ = _experiment(request, pk)
    item = get_object_or_404(DatasetItem, pk=item_id, dataset_id=experiment.dataset_id)
    by_id = {str(variant.pk): variant for variant in variants}
    a, b = by_id.get(request.GET.get("a", "")), by_id.get(request.GET.get("b", ""))
    if a is None or b is None or a == b:
        return HttpResponse("Choose two different variants of this experiment to compare.", status=400, content_type="text/plain")
    outputs = dict(Run.objects.filter(experiment=experiment, item=item, variant__in=[a, b], repeat=1).values_list("variant_id", "output"))
    context = {"item": item, "a": a, "b": b, "segments": diff.words(outputs.get(a.pk, ""), outputs.get(b.pk, ""))}
    return render(request, "evaluations/partials/item-diff.html", context)


EXPORT_FIELDS = ["row", "vars", "expected", "variant", "variant_name", "repeat", "status", "output", "error", "latency_ms", "cost_usd",
                 "scores"]  # fmt: skip


@require_GET
@login_required
def experiment_export(request, pk: int, format: str):
    """Every run with its scores, as CSV or JSONL, streamed."""
    experiment = experiment_selectors.experiment_for(user=request.user, pk=pk)
    if format not in ("csv", "jsonl"):
        raise Http404("Export as csv or jsonl.")
    rows = selectors.experiment_export_rows(experiment=experiment)
    if format == "jsonl":
        lines = (json.dumps(row, default=str, ensure_ascii=False) + "\n" for row in rows)
    else:
        lines = _csv_lines(rows)
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson" if format == "jsonl" else "text/csv")
    response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}.{format}"'
    return response


def _csv_lines(rows):
    class Line:
        def write(self, text):
            return text

    writer = csv.writer(Line())
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        yield writer.writerow([csv_cell(_csv_cell(row, name)) for name in EXPORT_FIELDS])


def _csv_cell(row: dict, name: str):
    if name in ("vars", "scores"):
        return json.dumps(row[name])
    return "unknown" if name == "cost_usd" and row["cost_unknown"] else row[name]
