import json
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from promptlab.accounts.models import Project
from promptlab.errors import Invalid
from promptlab.llm.models import CallResult, ModelEndpoint
from promptlab.llm.params import validate_params
from prompts.models import Prompt


class Dataset(models.Model):
    """Cases to run prompts on: each item carries the variables, an optional expected output and metadata."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Items are not versioned one by one (an import adds up to a million): each import is
    # recorded here as a save of the dataset whose change reason says what it added.
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at"])

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name_per_project")]

    def __str__(self):
        return self.name


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    row = models.PositiveIntegerField(help_text="1-based position, as in the imported file.")
    vars = models.JSONField(default=dict)
    expected = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The item's own checks, besides the experiment's evaluators (a promptfoo test's `assert`):
    # [{"kind", "config", "weight", "metric", "threshold", "inverted"}], normalized on save by
    # the check evaluations registers in experiments.extensions.
    assertions = models.JSONField(default=list, blank=True, help_text="The item's own assertions, graded on every run of it.")
    threshold = models.FloatField(
        null=True, blank=True, help_text="0 to 1: a run passes when its weighted score is at least this. Empty: every check must pass."
    )

    class Meta:
        ordering = ["dataset", "row"]
        constraints = [models.UniqueConstraint(fields=["dataset", "row"], name="dataset_item_unique_row")]

    def __str__(self):
        return f"{self.dataset} row {self.row}"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    SCORING = "scoring"  # every call is made; scores are still coming in
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Experiment(models.Model):
    """A dataset x variants x repeats. Its runs are created when it starts and filled in by workers."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    repeats = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])
    concurrency = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(256)], help_text="Runs in flight at once for this experiment."
    )
    budget_usd = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, help_text="Hard limit in USD; no call starts beyond it."
    )
    spent_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    cache_responses = models.BooleanField(
        default=False,
        help_text="Reuse stored answers to identical calls (temperature 0 only). Each repeat keeps its own answer, so repeats stay samples.",
    )
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.dataset_id and self.project_id and self.dataset.project_id != self.project_id:
            raise ValidationError({"dataset": "The dataset belongs to another project."})
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise ValidationError({"budget_usd": "A budget must be more than 0 USD."})
        if self.budget_usd is not None and self.budget_usd < self.spent_usd:
            raise ValidationError({"budget_usd": f"The experiment has spent ${self.spent_usd} already: a budget cannot be less."})


class Variant(models.Model):
    """A prompt (at a label or version, frozen to a version at start) on an endpoint with overrides."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="variants")
    label = models.SlugField(max_length=50, blank=True, help_text="Used when no version is given; frozen at start.")
    version = models.PositiveIntegerField(null=True, blank=True)
    endpoint = models.ForeignKey(ModelEndpoint, null=True, blank=True, on_delete=models.PROTECT, help_text="Default: the prompt version's model.")
    params = models.JSONField(default=dict, blank=True, help_text="Overrides of the prompt version's params.")

    class Meta:
        ordering = ["experiment", "id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")]

    def __str__(self):
        return self.name

    @property
    def display(self) -> str:
        """What people see of the variant, true however its label moves later: the prompt, its
        frozen version, then the label it was resolved from ("support-reply v3 (production at
        start)"; before the start, when the label is not read yet, "support-reply at production").
        A name of the variant's own comes first ("baseline: support-reply v3"); the names made
        from the prompt's name (the experiment form's "support-reply production on GPT-4o") are
        not repeated. Listed by `display_apart` with its experiment's other variants, it also
        says what tells it from one that would read the same: the model, else the parameters."""
        return getattr(self, "_display_apart", None) or self._display_alone()

    def _display_alone(self) -> str:
        version = f"v{self.version}" if self.version else f"at {self.label or 'production'}"
        shown = f"{self.prompt.name} {version}" + (f" ({self.label} at start)" if self.label and self.version else "")
        made_from_prompt = self.name in ("", self.prompt.name) or self.name.startswith(f"{self.prompt.name} ")
        return shown if made_from_prompt else f"{self.name}: {shown}"

    def clean(self):
        if self.prompt_id and self.experiment.project_id and self.prompt.project_id != self.experiment.project_id:
            raise ValidationError({"prompt": f"The prompt {self.prompt.name!r} belongs to another project."})
        try:
            validate_params(self.params)
        except Invalid as exc:
            raise ValidationError({"params": exc.message}) from None


def display_apart(variants: list[Variant]) -> list[Variant]:
    """The variants of one experiment (prompts and models selected), each `display` telling
    it from the others: where two would read the same, the model is added ("... on GPT-4o
    mini"), then the parameters that differ ("... with temperature=0.7"), then the name,
    which is unique. Returns the list."""
    shown = [variant._display_alone() for variant in variants]
    for tell in (_model_of, _params_of, _name_of):
        alike = defaultdict(list)
        for index, text in enumerate(shown):
            alike[text].append(index)
        for indexes in (indexes for indexes in alike.values() if len(indexes) > 1):
            group = [variants[index] for index in indexes]
            for index in indexes:
                shown[index] += tell(variants[index], group)
    for variant, text in zip(variants, shown, strict=True):
        variant._display_apart = text
    return variants


def _model_of(variant: Variant, alike: list[Variant]) -> str:
    if len({other.endpoint_id for other in alike}) == 1:
        return ""
    return f" on {variant.endpoint.display_name}" if variant.endpoint else " on the version's model"


def _params_of(variant: Variant, alike: list[Variant]) -> str:
    keys = sorted({key for other in alike for key in other.params})
    differ = [key for key in keys if len({json.dumps(other.params.get(key), sort_keys=True) for other in alike}) > 1]
    shown = [f"{key}={json.dumps(variant.params[key])}" if key in variant.params else f"{key} unset" for key in differ]
    return f" with {', '.join(shown)}" if shown else ""


def _name_of(variant: Variant, alike: list[Variant]) -> str:
    return f" ({variant.name})"


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Run(CallResult):
    """One LLM call: item x variant x repeat."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="runs")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="runs")
    repeat = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    reserved_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")

    class Meta:
        ordering = ["experiment", "item__row", "variant", "repeat"]
        constraints = [models.UniqueConstraint(fields=["variant", "item", "repeat"], name="run_unique_cell")]
        indexes = [models.Index(fields=["experiment", "status"], name="run_experiment_status")]

    def __str__(self):
        return f"run {self.pk} ({self.status})"


class PlaygroundCallStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PlaygroundCall(CallResult):
    """One playground call: a prompt version rendered with sample variables, sent to one
    endpoint by a worker. The calls of one submit share a `batch` and show side by side."""

    batch = models.UUIDField(db_index=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="playground_calls")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="playground_calls")
    version = models.PositiveIntegerField()
    # Scratch work: deleting an endpoint takes its playground calls with it.
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="playground_calls")
    vars = models.JSONField(default=dict, blank=True, help_text="The variables as entered.")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=PlaygroundCallStatus.choices, default=PlaygroundCallStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    # The worker making it holds it until then, renewing as it waits (promptlab.leases); past it, its worker died.
    lease_until = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")

    class Meta:
        ordering = ["batch", "id"]
        # The few open calls, which recovery scans for those whose worker died or whose message was lost.
        indexes = [models.Index(fields=["status", "created_at"], condition=models.Q(status__in=["pending", "running"]), name="playground_call_open")]

    def __str__(self):
        return f"playground call {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (PlaygroundCallStatus.DONE, PlaygroundCallStatus.FAILED)
