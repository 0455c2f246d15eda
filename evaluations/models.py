
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords

from experiments.models import Experiment, Run
from promptlab.accounts.models import Project


class Evaluator(models.Model):
    """A named scoring rule of a project. Saves go through evaluations.services: each one is
    kept in `history`; `version` goes up when what a score means changes (kind, config,
    threshold, inverted), and scores are kept per version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluators")
    name = models.SlugField(max_length=100, help_text="Unique in the project.")
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=64, help_text="One of the registered kinds, e.g. contains, regex, llm_judge.")
    config = models.JSONField(default=dict, blank=True, help_text='The kind\'s settings, e.g. {"value": "refund"}.')
    weight = models.FloatField(default=1.0, help_text="Its share in a weighted overall score.")
    threshold = models.FloatField(
        null=True, blank=True, help_text="Pass when the score (0 to 1) is at least this. Empty: the kind decides."
    )
    inverted = models.BooleanField(default=False, help_text="Pass when the check fails; the score becomes 1 - score.")
    enabled = models.BooleanField(default=True)
    # Made for dataset items' own assertions (evaluations.grading): identical assertions share
    # one, it is never listed, attached or edited, and its scores are kept like any other's.
    inline = models.BooleanField(default=False, editable=False)
    version = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True), excluded_fields=["updated_at"])

    # What a score depends on: a change to one of these is a new version.
    SCORING_FIELDS = ["kind", "config", "threshold", "inverted"]
    CONTENT_FIELDS = [*SCORING_FIELDS, "description", "weight", "enabled"]

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="evaluator_unique_name_per_project")]

    def __str__(self):
        return self.name


class ExperimentEvaluator(models.Model):
    """Which evaluators score an experiment's runs."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="evaluator_links")
    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="experiment_links")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "evaluator"], name="experiment_evaluator_unique")]

    def __str__(self):
        return f"{self.evaluator} on {self.experiment}"


class ScoreStatus(models.TextChoices):
    PENDING = "pending"  # claimed by a scoring task that has not finished
    OK = "ok"
    ERRORED = "errored"  # could not be scored: never a failure, never a zero


class Score(models.Model):
    """One evaluator version's verdict on one run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scores")
    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="scores")
    evaluator_version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ScoreStatus.choices, default=ScoreStatus.PENDING)
    value = models.FloatField(null=True, blank=True, help_text="0 to 1; empty unless ok.")
    passed = models.BooleanField(null=True, blank=True)
    reason = models.TextField(blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    retryable = models.BooleanField(default=False, help_text="Errored for a reason that may clear up (rate limit, 5xx).")
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    reserved_usd = models.DecimalField(
        max_digits=12, decimal_places=8, default=0, help_text="Held against the experiment's budget while a judge or embedding call is out."
    )
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "evaluator", "evaluator_version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "evaluator", "evaluator_version"], name="score_unique_per_version"),
            models.CheckConstraint(
                condition=~models.Q(status="ok") | models.Q(value__isnull=False, passed__isnull=False), name="score_ok_has_value"
            ),
            models.CheckConstraint(
                condition=models.Q(status="ok") | models.Q(value__isnull=True, passed__isnull=True), name="score_only_ok_has_value"
            ),
        ]
        indexes = [models.Index(fields=["evaluator", "evaluator_version", "status"], name="score_evaluator_status")]

    def __str__(self):
        return f"{self.evaluator} v{self.evaluator_version} on run {self.run_id}: {self.status}"


class RatingScale(models.TextChoices):
    THUMBS = "thumbs", "Thumbs (0 down, 1 up)"
    FIVE = "five", "1 to 5"
    PASS_FAIL = "pass_fail", "Pass/fail (0 fail, 1 pass)"


RATING_VALUES = {RatingScale.THUMBS: (0, 1), RatingScale.FIVE: (1, 2, 3, 4, 5), RatingScale.PASS_FAIL: (0, 1)}


class HumanRating(models.Model):
    """A person's rating of one run; one per (run, user), any number of raters per run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    scale = models.CharField(max_length=16, choices=RatingScale.choices)
    value = models.SmallIntegerField()
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "user"]
        constraints = [
            models.UniqueConstraint(fields=["run", "user"], name="rating_one_per_run_and_user"),
            models.CheckConstraint(
                condition=models.Q(scale="five", value__gte=1, value__lte=5)
                | models.Q(scale__in=["thumbs", "pass_fail"], value__in=[0, 1]),
                name="rating_value_in_scale",
            ),
        ]

    def __str__(self):
        return f"{self.user} rated run {self.run_id}: {self.value} ({self.scale})"


@receiver(pre_save, sender=Evaluator.history.model)
def _history_is_immutable(sender, instance, **kwargs):
    """A saved version is what its scores were made with: changing it would rewrite them."""
    if not instance._state.adding:
        raise ValidationError("Evaluator versions are immutable; save a new version instead.")


class PromotionGate(models.Model):
    """What a version must show before `production` may point at it: a gate experiment on the
    dataset, against the version the baseline label points at, scored by the evaluators, with
    no significant regression in pass rate and a pass rate of at least `min_pass_rate`."""

    prompt = models.OneToOneField("prompts.Prompt", on_delete=models.CASCADE, related_name="gate")
    dataset = models.ForeignKey("experiments.Dataset", on_delete=models.PROTECT, related_name="gates")
    evaluators = models.ManyToManyField(Evaluator, related_name="gates")
    baseline_label = models.SlugField(max_length=50, default="production", help_text="The version to compare against.")
    min_pass_rate = models.FloatField(default=0.9, help_text="0 to 1: the candidate's pass rate must be at least this.")
    alpha = models.FloatField(default=0.05, help_text="Significance level of the regression test (McNemar).")
    no_evaluator_regression = models.BooleanField(
        default=True, help_text="Also refuse a version that is significantly worse than the baseline on any one evaluator (Holm-adjusted)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"gate of {self.prompt}"


class GateRun(models.Model):
    """An experiment started to check one version against a gate."""

    gate = models.ForeignKey(PromotionGate, on_delete=models.CASCADE, related_name="runs")
    experiment = models.OneToOneField(Experiment, on_delete=models.CASCADE, related_name="gate_run")
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class GateDecision(models.Model):
    """Why `production` was allowed to move: the gate passed, or an admin overrode it with a reason."""

    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="gate_decisions")
    version = models.PositiveIntegerField()
    passed = models.BooleanField()
    reason = models.TextField(help_text="The gate's verdict in words.")
    override_reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-decided_at"]


# --- Governance: approvals, notifications and webhooks (evaluations.governance) -------------
















