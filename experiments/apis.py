"""The REST API for datasets, their items and experiments. Same rules as prompts.apis: each
view validates, calls one service, and serializes; the project comes from `ProjectApi`.

Evaluators, scores and comparisons are served by evaluations.apis. The create call takes
what higher layers attach to an experiment (experiments.extensions: evaluations' evaluators)
in the same transaction, so a client never sees a draft without its evaluators.
"""

import re

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from experiments import datasets, extensions, selectors, services
from experiments.models import Experiment, ExperimentStatus, RunStatus, display_apart
from promptlab.accounts.project_api import ProjectApi
from promptlab.api import SLUG, named_in_body, page_of, paged
from promptlab.errors import Invalid
from promptlab.llm import selectors as llm_selectors
from prompts import selectors as prompt_selectors
from prompts.apis import VersionField, label_or_version

# --- Serializers ------------------------------------------------------------------------------------


class DatasetSerializer(serializers.Serializer):
    name = serializers.SlugField()
    description = serializers.CharField(allow_blank=True)
    items = serializers.IntegerField(source="item_count")
    created_at = serializers.DateTimeField()


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(SLUG, max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class ItemSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    vars = serializers.DictField()
    expected = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    assertions = serializers.ListField(
        child=serializers.DictField(), help_text="The item's own checks, each {kind, config, weight, metric, threshold, inverted}."
    )
    threshold = serializers.FloatField(
        allow_null=True, help_text="0 to 1: a run passes when its weighted score is at least this; null: every check must pass."
    )


class ItemsAddSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=10_000,
        help_text='Each {"vars": {...}, "expected": "...", "metadata": {...}, "assertions": [...], "threshold": 0.5} (an '
                  'assertion in promptlab\'s shape or promptfoo\'s {"type", "value"}; "assert" is read as "assertions"), or a flat '
                  "object read like a JSONL line.",
    )  # fmt: skip


class AddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Items in the dataset now.")


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (header row) or JSONL, UTF-8.")
    format = serializers.ChoiceField(["csv", "jsonl"], required=False, help_text="Default: from the file name's extension.")
    mapping = serializers.JSONField(
        required=False, help_text='Column to target, e.g. {"question": "vars.q", "answer": "expected", "notes": null}.'
    )
    replace = serializers.BooleanField(required=False, default=False, help_text="Replace the items instead of adding to them.")

    def validate_mapping(self, mapping):
        if not isinstance(mapping, dict) or not all(isinstance(t, str) or t is None for t in mapping.values()):
            raise serializers.ValidationError('A mapping is an object of column names to targets, e.g. {"answer": "expected"}.')
        return mapping


class VariantSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, help_text="Default: the prompt's name.")
    prompt = serializers.RegexField(SLUG, max_length=100)
    label = serializers.RegexField(
        SLUG, max_length=50, required=False, help_text='Default production; frozen at start. "v3" or "3" means version 3.'
    )
    version = VersionField(required=False, help_text='3 or "v3".')
    model = serializers.RegexField(SLUG, max_length=64, required=False, help_text="Default: the prompt version's model.")
    params = serializers.DictField(required=False, default=dict)

    def validate(self, data):
        return label_or_version(data)


MAX_ID = 2**63 - 1


@extend_schema_field({
    "oneOf": [{"type": "string", "pattern": SLUG, "maxLength": 100, "description": "Its name."},
              {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": "Its id."}],
})  # fmt: skip
class RefField(serializers.Field):
    """A project's object by name (a string) or by id (a number)."""

    default_error_messages = {"invalid": "Give a name (a string of letters, digits, - and _) or an id (a number)."}

    def to_internal_value(self, data):
        if isinstance(data, int) and not isinstance(data, bool) and 1 <= data <= MAX_ID:
            return data
        if isinstance(data, str) and len(data) <= 100 and re.fullmatch(SLUG, data):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class ExperimentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    dataset = serializers.RegexField(SLUG, max_length=100, help_text="The dataset's name.")
    variants = VariantSerializer(many=True, allow_empty=False)
    repeats = serializers.IntegerField(min_value=1, max_value=100, required=False, default=1)
    concurrency = serializers.IntegerField(min_value=1, max_value=256, required=False, default=8)
    cache_responses = serializers.BooleanField(
        required=False, default=False,
        help_text="Reuse stored answers to identical calls (temperature 0 only); each repeat keeps its own answer.",
    )  # fmt: skip
    budget_usd = serializers.DecimalField(max_digits=14, decimal_places=8, min_value=0, required=False, allow_null=True)

    def get_fields(self):
        """Plus a list of names or ids per attachment that higher layers register (evaluators)."""
        fields = super().get_fields()
        for attachment in extensions.attachments():
            fields[attachment.name] = serializers.ListField(
                child=RefField(), required=False, default=list, max_length=100, help_text=attachment.help_text
            )
        return fields


class VariantDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="As the comparison (GET experiments/{id}/comparison/) names its variants.")
    name = serializers.CharField()
    display = serializers.CharField(
        help_text='What people read: prompt, frozen version and the label it came from, e.g. "support-reply v3 (production at start)".'
    )
    prompt = serializers.CharField()
    label = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    params = serializers.DictField()


class CountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    total = serializers.IntegerField()


class ScoringSerializer(serializers.Serializer):
    scored = serializers.IntegerField(help_text="Answered runs whose scores are all in (an errored score is in).")
    to_score = serializers.IntegerField(help_text="Answered (done) runs.")


class ExperimentSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    dataset = serializers.CharField(source="dataset.name")
    status = serializers.ChoiceField(ExperimentStatus.choices)
    repeats = serializers.IntegerField()
    budget_usd = serializers.DecimalField(max_digits=14, decimal_places=8, allow_null=True)
    spent_usd = serializers.DecimalField(
        max_digits=14, decimal_places=8, source="spent", allow_null=True, help_text="null when a run's cost is unknown (its model has no price)."
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ExperimentSerializer(ExperimentSummarySerializer):
    concurrency = serializers.IntegerField()
    cache_responses = serializers.BooleanField()
    variants = VariantDocumentSerializer(many=True)
    counts = CountsSerializer(help_text="Runs by status.")
    scoring = ScoringSerializer(
        help_text="How far scoring has come. The status is `scoring` while every call is made but scores are to come, then `finished`."
    )


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    variant = serializers.CharField(source="variant.name")
    row = serializers.IntegerField(source="item.row", help_text="The dataset item's row.")
    repeat = serializers.IntegerField()
    status = serializers.ChoiceField(RunStatus.choices)
    output = serializers.CharField(allow_blank=True)
    finish_reason = serializers.CharField(allow_blank=True)
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    cached = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    error_kind = serializers.CharField(allow_blank=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RunListQuery(serializers.Serializer):
    status = serializers.ChoiceField(RunStatus.choices, required=False)
    variant = serializers.CharField(max_length=100, required=False)


def experiment_document(experiment: Experiment) -> dict:
    """The experiment with its variants (prefetched), its runs counted by status and how far scoring has come."""
    counts = services.experiment_counts(experiment)
    fields = ["id", "name", "status", "repeats", "concurrency", "cache_responses", "budget_usd", "created_at",
              "started_at", "finished_at"]  # fmt: skip
    return ExperimentSerializer({
        **{field: getattr(experiment, field) for field in fields},
        "dataset": experiment.dataset, "spent": counts["spent_usd"], "counts": counts,
        "scoring": extensions.scoring_progress(experiment),
        "variants": [
            {"id": v.pk, "name": v.name, "display": v.display, "prompt": v.prompt.name, "label": v.label, "version": v.version,
             "model": v.endpoint.name if v.endpoint else None, "params": v.params}
            for v in display_apart(list(experiment.variants.all()))
        ],
    }).data  # fmt: skip


# --- Datasets ---------------------------------------------------------------------------------------


class DatasetListApi(ProjectApi):
    required_scope = {"GET": "read", "POST": "write"}

    @extend_schema(operation_id="datasets_list", responses={200: paged(DatasetSerializer)}, description="The project's datasets.")
    def get(self, request):
        return page_of(self, selectors.dataset_list(project=self.project), lambda rows: DatasetSerializer(rows, many=True).data)

    @extend_schema(operation_id="datasets_create", request=DatasetCreateSerializer, responses={201: DatasetSerializer},
                   description="Create an empty dataset.")  # fmt: skip
    def post(self, request):
        data = self.valid(DatasetCreateSerializer, request.data)
        dataset = datasets.dataset_create(project=self.project, actor=self.actor, **data)
        return Response(DatasetSerializer(selectors.dataset_get(project=self.project, name=dataset.name)).data, status=201)


class DatasetApi(ProjectApi):
    required_scope = "read"

    @extend_schema(operation_id="datasets_get", responses={200: DatasetSerializer}, description="A dataset and its number of items.")
    def get(self, request, name: str):
        return Response(DatasetSerializer(selectors.dataset_get(project=self.project, name=name)).data)


class ItemListApi(ProjectApi):
    required_scope = {"GET": "read", "POST": "write"}

    @extend_schema(operation_id="datasets_items_list", responses={200: paged(ItemSerializer)}, description="The items, by row.")
    def get(self, request, name: str):
        dataset = selectors.dataset_get(project=self.project, name=name)
        return page_of(self, selectors.dataset_items(dataset=dataset), lambda rows: ItemSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="datasets_items_add", request=ItemsAddSerializer, responses={201: AddedSerializer},
        description="Append items, all or nothing, with the checks of a JSONL import (item N is line N).",
    )  # fmt: skip
    def post(self, request, name: str):
        data = self.valid(ItemsAddSerializer, request.data)
        dataset = selectors.dataset_get(project=self.project, name=name)
        added = datasets.dataset_items_add(dataset=dataset, actor=self.actor, items=data["items"])
        return Response({"added": added, "items": dataset.items.count()}, status=201)


class UploadApi(ProjectApi):
    required_scope = "write"
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="datasets_upload", request={"multipart/form-data": UploadSerializer}, responses={201: AddedSerializer},
        description="Import a CSV or JSONL file (multipart field `file`), all or nothing; problems are listed by row and line.",
    )  # fmt: skip
    def post(self, request, name: str):
        data = self.valid(UploadSerializer, request.data)
        dataset = selectors.dataset_get(project=self.project, name=name)
        upload = data["file"]
        format = data.get("format") or datasets.format_from_name(upload.name or "")
        if format is None:
            raise Invalid("Say the file's format (csv or jsonl): its name does not end in .csv or .jsonl.", details={"format": "required"})
        added = datasets.dataset_import(
            dataset=dataset, actor=self.actor, file=upload, format=format, mapping=data.get("mapping"), replace=data["replace"]
        )
        return Response({"added": added, "items": dataset.items.count()}, status=201)


# --- Experiments ------------------------------------------------------------------------------------


class ExperimentListApi(ProjectApi):
    required_scope = {"GET": "read", "POST": "run"}

    @extend_schema(operation_id="experiments_list", responses={200: paged(ExperimentSummarySerializer)},
                   description="The project's experiments, newest first.")  # fmt: skip
    def get(self, request):
        return page_of(self, selectors.experiment_list(project=self.project), lambda rows: ExperimentSummarySerializer(rows, many=True).data)

    @extend_schema(
        operation_id="experiments_create", request=ExperimentCreateSerializer, responses={201: ExperimentSerializer},
        description="Create a draft experiment: a dataset, variants (prompt at a label or version, optional model and params) "
        "and the evaluators that score its runs (by name or id), all or nothing.",
    )  # fmt: skip
    def post(self, request):
        data = self.valid(ExperimentCreateSerializer, request.data)
        dataset = named_in_body(selectors.dataset_get, project=self.project, name=data["dataset"])
        variants = [self._variant(spec) for spec in data["variants"]]
        attach = {attachment.name: attachment.resolve(self.project, data[attachment.name]) for attachment in extensions.attachments()}
        experiment = services.experiment_create(
            project=self.project, actor=self.actor, name=data["name"], dataset=dataset, variants=variants,
            repeats=data["repeats"], concurrency=data["concurrency"], cache_responses=data["cache_responses"],
            budget_usd=data.get("budget_usd"), attach=attach,
        )  # fmt: skip
        return Response(experiment_document(selectors.experiment_get(project=self.project, pk=experiment.pk)), status=201)

    def _variant(self, spec: dict) -> dict:
        variant = {**spec, "prompt": named_in_body(prompt_selectors.prompt_get, project=self.project, name=spec["prompt"])}
        if "model" in spec:
            variant["endpoint"] = named_in_body(llm_selectors.endpoint_get, name=variant.pop("model"))
        return variant


class ExperimentApi(ProjectApi):
    required_scope = "read"

    @extend_schema(operation_id="experiments_get", responses={200: ExperimentSerializer},
                   description="The experiment, its variants, and its runs counted by status with the spend.")  # fmt: skip
    def get(self, request, pk: int):
        return Response(experiment_document(selectors.experiment_get(project=self.project, pk=pk)))


def _action(operation: str, service, description: str):
    class ExperimentActionApi(ProjectApi):
        required_scope = "run"

        @extend_schema(operation_id=f"experiments_{operation}", request=None, responses={200: ExperimentSerializer},
                       description=description)  # fmt: skip
        def post(self, request, pk: int):
            experiment = selectors.experiment_get(project=self.project, pk=pk)
            service(experiment=experiment, actor=self.actor)
            return Response(experiment_document(selectors.experiment_get(project=self.project, pk=pk)))

    ExperimentActionApi.__name__ = ExperimentActionApi.__qualname__ = f"Experiment{operation.title().replace('_', '')}Api"
    return ExperimentActionApi


ExperimentStartApi = _action("start", services.experiment_start, "Freeze the variants to versions, create the runs and start them.")
ExperimentCancelApi = _action("cancel", services.experiment_cancel, "Cancel the pending runs; runs in flight finish.")
ExperimentResumeApi = _action(
    "resume", services.experiment_resume,
    "Run the cancelled runs again, and those skipped because the budget was reached (raise it first, with budget/).",
)  # fmt: skip
ExperimentRetryErrorsApi = _action("retry_errors", services.experiment_retry_errors, "Run the failed runs again.")


class BudgetSerializer(serializers.Serializer):
    budget_usd = serializers.DecimalField(
        max_digits=14, decimal_places=8, min_value=0, allow_null=True, help_text="The new budget; null for none. Never below what is spent."
    )


class ExperimentBudgetApi(ProjectApi):
    required_scope = "run"

    @extend_schema(operation_id="experiments_budget", request=BudgetSerializer, responses={200: ExperimentSerializer},
                   description="Change the budget, also of a started experiment; then resume/ runs what was skipped for it.")  # fmt: skip
    def post(self, request, pk: int):
        data = self.valid(BudgetSerializer, request.data)
        experiment = selectors.experiment_get(project=self.project, pk=pk)
        services.experiment_budget_set(experiment=experiment, actor=self.actor, budget_usd=data["budget_usd"])
        return Response(experiment_document(selectors.experiment_get(project=self.project, pk=pk)))


class RunListApi(ProjectApi):
    required_scope = "read"

    @extend_schema(operation_id="experiments_runs_list", parameters=[RunListQuery], responses={200: paged(RunSerializer)},
                   description="The runs, by item row, variant and repeat; filter by status or variant name.")  # fmt: skip
    def get(self, request, pk: int):
        query = self.valid(RunListQuery, request.query_params)
        experiment = selectors.experiment_get(project=self.project, pk=pk)
        return page_of(self, selectors.run_list(experiment=experiment, **query), lambda rows: RunSerializer(rows, many=True).data)


urlpatterns = [
    path("datasets/", DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<slug:name>/", DatasetApi.as_view(), name="api-dataset"),
    path("datasets/<slug:name>/items/", ItemListApi.as_view(), name="api-dataset-items"),
    path("datasets/<slug:name>/upload/", UploadApi.as_view(), name="api-dataset-upload"),
    # experiments/ (list, create) is routed by evaluations.apis, whose create takes evaluators too.
    path("experiments/", ExperimentListApi.as_view(), name="api-experiments"),
    path("experiments/<int:pk>/", ExperimentApi.as_view(), name="api-experiment"),
    path("experiments/<int:pk>/start/", ExperimentStartApi.as_view(), name="api-experiment-start"),
    path("experiments/<int:pk>/cancel/", ExperimentCancelApi.as_view(), name="api-experiment-cancel"),
    path("experiments/<int:pk>/resume/", ExperimentResumeApi.as_view(), name="api-experiment-resume"),
    path("experiments/<int:pk>/budget/", ExperimentBudgetApi.as_view(), name="api-experiment-budget"),
    path("experiments/<int:pk>/retry-errors/", ExperimentRetryErrorsApi.as_view(), name="api-experiment-retry-errors"),
    path("experiments/<int:pk>/runs/", RunListApi.as_view(), name="api-experiment-runs"),
]
