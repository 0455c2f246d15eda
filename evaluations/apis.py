"""The REST API for evaluators, scores and comparisons. Same rules as prompts.apis: each view
validates, calls one service or read, and serializes; the project comes from `ProjectApi`.
(An experiment's evaluators are given when it is created: experiments.apis, through
experiments.extensions.)"""

import math

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from evaluations import comparison, gates, selectors
from evaluations.models import ScoreStatus
from experiments import selectors as experiment_selectors
from experiments.models import Experiment
from promptlab.accounts.project_api import ProjectApi
from promptlab.api import SLUG, page_of, paged

# --- Serializers ------------------------------------------------------------------------------------


class EvaluatorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.SlugField()
    description = serializers.CharField(allow_blank=True)
    kind = serializers.CharField(help_text="contains, regex, llm_judge, ... or a registered plugin's kind.")
    config = serializers.DictField(help_text="The kind's settings.")
    weight = serializers.FloatField(help_text="Its share in a run's weighted score.")
    threshold = serializers.FloatField(allow_null=True, help_text="Pass at this score or above; null: the kind decides.")
    inverted = serializers.BooleanField()
    enabled = serializers.BooleanField()
    version = serializers.IntegerField(help_text="Goes up when what a score means changes; scores are kept per version.")
    updated_at = serializers.DateTimeField()


class ScoreListQuery(serializers.Serializer):
    evaluator = serializers.RegexField(SLUG, max_length=100, required=False, help_text="An evaluator's name.")
    status = serializers.ChoiceField(ScoreStatus.choices, required=False)
    variant = serializers.CharField(max_length=100, required=False, help_text="A variant's name.")
    versions = serializers.ChoiceField(
        ["current", "all"], required=False, default="current",
        help_text="current: each evaluator's current version (default); all: every version's scores.",
    )  # fmt: skip


class ScoreSerializer(serializers.Serializer):
    run = serializers.IntegerField(source="run_id", help_text="The run's id (GET experiments/{id}/runs/).")
    variant = serializers.CharField()
    row = serializers.IntegerField(help_text="The dataset item's row.")
    repeat = serializers.IntegerField()
    evaluator = serializers.CharField(source="evaluator_name")
    evaluator_version = serializers.IntegerField()
    current = serializers.BooleanField(help_text="Made with the evaluator's current version.")
    status = serializers.ChoiceField(
        ScoreStatus.choices, help_text="pending: being scored; errored: could not be scored (never a failure)."
    )
    value = serializers.FloatField(allow_null=True, help_text="0 to 1; null unless ok.")
    passed = serializers.BooleanField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    error_kind = serializers.CharField(allow_blank=True)
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True, help_text="What a judge model cost.")
    updated_at = serializers.DateTimeField()


class IntervalSerializer(serializers.Serializer):
    estimate = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()


class VariantNumbersSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Prompt, frozen version and the label it came from: support-reply v3 (production at start).")
    runs = serializers.IntegerField(help_text="Runs that ran (done or failed).")
    errored = serializers.IntegerField(help_text="Runs whose call or a check errored: in no rate or mean.")
    graded = serializers.IntegerField(help_text="Runs with a verdict by the grading rule.")
    passed = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Items with a verdict: the n of intervals and tests (an item's repeats are averaged first).")
    pass_rate = IntervalSerializer(allow_null=True, help_text="Over items, 95% CI: Wilson's, or a bootstrap over items with repeats.")
    mean_score = IntervalSerializer(allow_null=True, help_text="Mean of the items' weighted scores, bootstrap 95% CI.")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True, help_text="null when a run's cost is unknown.")
    cost_per_item_usd = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)


class PairTestSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(["pass", "score"])
    test = serializers.CharField(
        help_text="mcnemar_exact (one verdict per item) or wilcoxon_signed_rank (scores, or items' pass shares with repeats)."
    )
    items = serializers.IntegerField(help_text="Items both variants have a verdict for.")
    a_better = serializers.IntegerField()
    b_better = serializers.IntegerField()
    difference = IntervalSerializer(allow_null=True, help_text="b minus a (pass: share of items; score: score units), paired 95% CI.")
    p_value = serializers.FloatField(allow_null=True)
    adjusted_p_value = serializers.FloatField(allow_null=True, help_text="Holm-adjusted, when several tests were made.")
    effect_size = serializers.FloatField(allow_null=True, help_text="Cohen's h (pass) or rank-biserial correlation (score); b minus a.")
    items_needed = serializers.IntegerField(allow_null=True, help_text="Paired items needed to detect a change of `change`.")
    change = serializers.FloatField()


class PairSerializer(serializers.Serializer):
    a = serializers.CharField(help_text="A variant's name.")
    b = serializers.CharField()
    passing = PairTestSerializer()
    scores = PairTestSerializer()
    pass_verdict = serializers.CharField(help_text="The pass-rate comparison in plain words.")
    score_verdict = serializers.CharField()
    changes = serializers.ListField(child=serializers.CharField(), help_text="Each evaluator on which b differs significantly from a.")
    headline = serializers.CharField(help_text="The pass verdict, then every significant change by evaluator.")


class CheckVariantSerializer(serializers.Serializer):
    variant = serializers.CharField()
    graded = serializers.IntegerField()
    passed = serializers.IntegerField()
    errored = serializers.IntegerField()
    pending = serializers.IntegerField()
    items = serializers.IntegerField()
    pass_rate = IntervalSerializer(allow_null=True)
    mean_value = IntervalSerializer(allow_null=True)


class CheckPairSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    passing = PairTestSerializer(help_text="Holm-adjusted across every evaluator x pair test.")
    significant = serializers.BooleanField()


class EvaluatorNumbersSerializer(serializers.Serializer):
    evaluator = serializers.CharField(help_text="An attached evaluator's name, or a metric (else the kind) of items' own assertions.")
    variants = CheckVariantSerializer(many=True)
    pairs = CheckPairSerializer(many=True)


class AgreementSerializer(serializers.Serializer):
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha; null when nothing varies.")
    raters = serializers.IntegerField()
    runs_rated_twice = serializers.IntegerField()


class GateSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    reason = serializers.CharField()


class ComparisonSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    significance = serializers.FloatField(help_text="The level at which a verdict calls a difference significant.")
    variants = VariantNumbersSerializer(many=True)
    pairs = PairSerializer(many=True, help_text="Every pair of variants on the same items.")
    evaluators = EvaluatorNumbersSerializer(many=True, help_text="Per evaluator (current versions): each variant, and each pair tested.")
    pending = serializers.IntegerField(help_text="Answered runs still being scored: not in the numbers yet.")
    gate = GateSerializer(allow_null=True, help_text="For a promotion gate's experiment, the gate's verdict; else null.")
    agreement = AgreementSerializer(allow_null=True, help_text="Between human raters; null until two people rated.")


def _finite(value):
    """JSON has no NaN or infinity: a statistic that is not a number is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _interval(interval) -> dict | None:
    if interval is None or not all(math.isfinite(x) for x in (interval.estimate, interval.low, interval.high)):
        return None
    return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


def _pair_test(result) -> dict:
    return {
        "metric": result.metric, "test": result.test,
        "items": result.n_pairs, "a_better": result.a_better, "b_better": result.b_better,
        "difference": _interval(result.difference), "p_value": _finite(result.p_value),
        "adjusted_p_value": _finite(result.adjusted_p), "effect_size": _finite(result.effect_size),
        "items_needed": result.items_needed, "change": result.change,
    }  # fmt: skip


def _summary(summary) -> dict:
    return {"graded": summary.graded, "passed": summary.passed, "errored": summary.errored, "items": summary.items,
            "pass_rate": _interval(summary.pass_rate)}  # fmt: skip


def comparison_document(experiment: Experiment) -> dict:
    result = comparison.experiment_comparison(experiment=experiment)
    return ComparisonSerializer({
        "experiment": experiment.pk,
        "significance": comparison.ALPHA,
        "variants": [
            {"id": v.id, "name": v.name, "runs": v.summary.runs, **_summary(v.summary), "mean_score": _interval(v.summary.mean_score),
             "latency_p50_ms": _finite(v.summary.latency_p50), "latency_p95_ms": _finite(v.summary.latency_p95),
             "cost_usd": v.summary.cost_total, "cost_per_item_usd": v.summary.cost_per_item}
            for v in result.variants
        ],
        "pairs": [
            {"a": pair.a.name, "b": pair.b.name, "passing": _pair_test(pair.passing), "scores": _pair_test(pair.scores),
             "pass_verdict": pair.pass_verdict, "score_verdict": pair.score_verdict, "changes": pair.changes, "headline": pair.headline}
            for pair in result.pairs
        ],
        "evaluators": [
            {"evaluator": check.name,
             "variants": [{"variant": n.variant.name, **_summary(n.summary), "pending": n.pending, "mean_value": _interval(n.summary.mean_score)}
                          for n in check.variants],
             "pairs": [{"a": p.a.name, "b": p.b.name, "passing": _pair_test(p.passing), "significant": p.significant} for p in check.pairs]}
            for check in result.checks
        ],
        "pending": result.pending,
        "gate": (gate := gates.experiment_gate(experiment=experiment)) and {"passed": gate.passed, "reason": gate.reason},
        "agreement": result.agreement and {
            "alpha": _finite(result.agreement.alpha), "raters": result.agreement.raters,
            "runs_rated_twice": result.agreement.runs_rated_twice,
        },
    }).data  # fmt: skip


# --- Views ------------------------------------------------------------------------------------------


class EvaluatorListApi(ProjectApi):
    required_scope = "read"

    @extend_schema(operation_id="evaluators_list", responses={200: paged(EvaluatorSerializer)},
                   description="The project's evaluators, by name.")  # fmt: skip
    def get(self, request):
        return page_of(self, selectors.evaluator_list(project=self.project), lambda rows: EvaluatorSerializer(rows, many=True).data)


class ScoreListApi(ProjectApi):
    required_scope = "read"

    @extend_schema(
        operation_id="experiments_scores_list", parameters=[ScoreListQuery], responses={200: paged(ScoreSerializer)},
        description="The scores of the experiment's runs, by item row, variant, repeat and evaluator; filter by evaluator, "
        "status or variant. Each evaluator's current version unless versions=all.",
    )  # fmt: skip
    def get(self, request, pk: int):
        query = self.valid(ScoreListQuery, request.query_params)
        experiment = experiment_selectors.experiment_get(project=self.project, pk=pk)

        def documents(rows):
            return ScoreSerializer([{**row, "current": row["evaluator_version"] == row["current_version"]} for row in rows], many=True).data

        return page_of(self, selectors.score_list(experiment=experiment, **query), documents)


class ComparisonApi(ProjectApi):
    required_scope = "read"

    @extend_schema(
        operation_id="experiments_comparison", responses={200: ComparisonSerializer},
        description="The variants compared on the same items: per variant pass rate and mean score with 95% intervals, "
        "latency and cost; per pair a paired test (Holm-adjusted when there are several pairs) and a verdict in plain words. "
        "A run passes when every evaluator passes it; errored runs count apart, never as failures.",
    )  # fmt: skip
    def get(self, request, pk: int):
        return Response(comparison_document(experiment_selectors.experiment_get(project=self.project, pk=pk)))


urlpatterns = [
    path("evaluators/", EvaluatorListApi.as_view(), name="api-evaluators"),
    path("experiments/<int:pk>/scores/", ScoreListApi.as_view(), name="api-experiment-scores"),
    path("experiments/<int:pk>/comparison/", ComparisonApi.as_view(), name="api-experiment-comparison"),
]
