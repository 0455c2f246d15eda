"""How fast the first page of a big experiment's comparison matrix opens, and whether its
query count grows with the experiment.

A 2,000-item x 4-variant experiment with 3 evaluators (8,000 runs, 24,000 scores) is written
to the database, and its comparison page is fetched through the whole stack. The baseline is
the same page, same size (50 rows x 4 cells with the same badges and outputs), rendered by a
view that holds that content in memory: the difference is what reading the matrix costs.
Target: < 150 ms on PostgreSQL, and the same number of queries as for a 20-item experiment.
BENCH_MATRIX_ITEMS changes the item count.
"""

import os
import types
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.shortcuts import render
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path

from bench.timing import Comparison, rates
from evaluations import matrix, selectors
from evaluations import services as evaluations
from evaluations.models import Score, ScoreStatus
from experiments import selectors as experiment_selectors
from experiments.models import Dataset, DatasetItem, Experiment, ExperimentStatus, Run, RunStatus, Variant
from promptlab.accounts import services as account_services
from promptlab.llm.models import ModelEndpoint
from prompts import services as prompts

ITEMS = int(os.environ.get("BENCH_MATRIX_ITEMS", "2000"))
VARIANTS = 4
EVALUATORS = ("refund", "sorry", "polite")


def run() -> list[Comparison]:
    owner = get_user_model().objects.create_user("bench-matrix", "bench-matrix@example.com", is_staff=True)
    project = account_services.project_create(slug="bench-matrix", owner=owner)
    big, small = _experiment(project, owner, ITEMS, "big"), _experiment(project, owner, 20, "small")
    client = Client()
    client.force_login(owner)
    url = f"/experiments/{big.pk}/comparison/"
    queries = {name: _queries(client, f"/experiments/{experiment.pk}/comparison/") for name, experiment in (("big", big), ("small", small))}
    if queries["big"] != queries["small"]:
        raise RuntimeError(f"the matrix's query count grows with the experiment: {queries}")
    failures = f"{url}?failures=1"
    filtered = {name: _queries(client, f"/experiments/{experiment.pk}/comparison/?failures=1") for name, experiment in (("big", big), ("small", small))}
    if filtered["big"] != filtered["small"]:
        raise RuntimeError(f"the failures filter's query count grows with the experiment: {filtered}")
    with override_settings(ROOT_URLCONF=_urls_with_constant_page(big, owner)):
        measured, baseline = rates(lambda: _get(client, url), lambda: _get(client, "/bench/constant-matrix/"), seconds=4)
    graded, plain = rates(lambda: _get(client, failures), lambda: _get(client, url), seconds=4)
    return [
        Comparison(
            f"failures filter (every run graded by the rule), first page of {ITEMS} x {VARIANTS}", "ms", 1000 / graded, 1000 / plain,
            lower_is_better=True,
            note=f"grades all {ITEMS * VARIANTS} runs in Python ({filtered['big']} queries at any size); baseline: the unfiltered page.",
        ),
        Comparison(
            f"comparison matrix, first page of {ITEMS} x {VARIANTS}", "ms", 1000 / measured, 1000 / baseline, lower_is_better=True,
            note=f"{ITEMS * VARIANTS} runs, {ITEMS * VARIANTS * len(EVALUATORS)} scores on {connection.vendor}; "
                 f"{queries['big']} queries, as for a 20-item experiment; baseline: the same page from memory. Target < 150 ms.",
        )
    ]  # fmt: skip


def _experiment(project, owner, items: int, name: str) -> Experiment:
    endpoint, _ = ModelEndpoint.objects.get_or_create(name="bench-matrix", defaults={"display_name": "bench", "model": "openai/gpt-4o-mini"})
    prompt = prompts.prompt_create(project=project, actor=owner, name=f"answer-{name}", message="v1", template="Q: {{ q }}", endpoint=endpoint)
    dataset = Dataset.objects.create(project=project, name=name)
    rows = DatasetItem.objects.bulk_create(
        [DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}", "customer": f"customer {n % 97}"}) for n in range(1, items + 1)],
        batch_size=2000,
    )  # fmt: skip
    experiment = Experiment.objects.create(project=project, name=name, dataset=dataset, status=ExperimentStatus.FINISHED)
    variants = Variant.objects.bulk_create([Variant(experiment=experiment, name=f"v{n}", prompt=prompt, version=1) for n in range(VARIANTS)])
    checks = [
        evaluations.evaluator_create(project=project, actor=owner, name=f"{check}-{name}", kind="contains", config={"value": check})
        for check in EVALUATORS
    ]  # fmt: skip
    evaluations.experiment_evaluators_set(experiment=experiment, actor=owner, evaluators=checks)
    runs = Run.objects.bulk_create(
        [Run(experiment=experiment, variant=variant, item=item, status=RunStatus.DONE, latency_ms=200 + item.row % 50,
             cost_usd=Decimal("0.00042"), output=f"Dear customer, about {item.vars['q']}: we are sorry, a refund is on its way. " * 3)
         for item in rows for variant in variants],
        batch_size=2000,
    )  # fmt: skip
    Score.objects.bulk_create(
        [Score(run=run, evaluator=check, evaluator_version=check.version, status=ScoreStatus.OK,
               value=float((run.item_id + index) % 3 != 0), passed=(run.item_id + index) % 3 != 0)
         for run in runs for index, check in enumerate(checks)],
        batch_size=5000,
    )  # fmt: skip
    return experiment


def _get(client, url):
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return response


def _queries(client, url) -> int:
    _get(client, url)  # the session and content types are read once
    with CaptureQueriesContext(connection) as captured:
        _get(client, url)
    return len(captured.captured_queries)


def _urls_with_constant_page(experiment, user):
    """The project's URLs plus /bench/constant-matrix/: the same page and size, from memory."""
    from promptlab import urls

    experiment = experiment_selectors.experiment_for(user=user, pk=experiment.pk)
    variants = list(experiment.variants.order_by("pk"))
    evaluators = list(selectors.evaluators_of_experiment(experiment_id=experiment.pk))
    query = matrix.MatrixQuery()
    page, rows = matrix.matrix_page(experiment=experiment, query=query, variants=variants, user=user)
    page.paginator.count  # noqa: B018 (read once, kept)
    context = {
        "experiment": experiment, "variants": variants, "evaluators": evaluators, "params": {}, "scale": "thumbs", "rate_base": f"/experiments/{experiment.pk}/runs/",
        "variant_ratings": [(variant, {"count": 0, "mean": None}) for variant in variants], "query": query,
        "page": page, "rows": rows, "querystring": "",
    }  # fmt: skip

    def constant_matrix(request):
        return render(request, "evaluations/comparison.html", context)

    module = types.ModuleType("bench_matrix_urls")
    module.urlpatterns = [path("bench/constant-matrix/", constant_matrix), *urls.urlpatterns]
    return module
