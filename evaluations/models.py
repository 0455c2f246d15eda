import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords

from experiments.models import Experiment, Run
from prompts.models import Project


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


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ApprovalRequest(models.Model):
    """A proposal to move `production` to a version, with the gate's verdict at the time, and
    the decision of a second person (an admin or owner other than the proposer)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="approval_requests")
    # Kept when the prompt is deleted: the audit trail outlives it.
    prompt = models.ForeignKey("prompts.Prompt", null=True, on_delete=models.SET_NULL, related_name="approval_requests")
    prompt_name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    from_version = models.PositiveIntegerField(null=True, blank=True, help_text="Where production pointed when proposed.")
    message = models.TextField(blank=True, help_text="Why, in the proposer's words.")
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    proposed_at = models.DateTimeField(auto_now_add=True)
    gate_passed = models.BooleanField(null=True, blank=True, help_text="Empty: the prompt had no gate when proposed.")
    gate_reason = models.TextField(blank=True)
    gate_experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, help_text="The decider's comment.")
    override_reason = models.TextField(blank=True, help_text="Given by the approver to ship past a gate that had not passed.")
    label_move = models.ForeignKey("prompts.LabelMove", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "version"], condition=models.Q(status="pending"), name="approval_one_pending_per_version"
            ),
            models.CheckConstraint(condition=models.Q(status__in=ApprovalStatus.values), name="approval_status_valid"),
        ]
        indexes = [models.Index(fields=["project", "status"], name="approval_project_status")]

    def __str__(self):
        return f"{self.prompt_name}: production → v{self.version} ({self.status})"


class Notification(models.Model):
    """Something a person should know, shown in the top bar until they mark it read."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    approval = models.ForeignKey(ApprovalRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    text = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_unread")]

    def __str__(self):
        return self.text


class WebhookEvent(models.TextChoices):
    PROMPT_VERSION_CREATED = "prompt.version_created", "A prompt version was saved"
    LABEL_MOVED = "label.moved", "A label moved"
    APPROVAL_REQUESTED = "approval.requested", "A production move was proposed"
    APPROVAL_DECIDED = "approval.decided", "A proposal was approved or rejected"


class Webhook(models.Model):
    """Where a project's events are POSTed, signed with the secret (shown once, when created)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=200, help_text="What receives it, e.g. Slack #releases.")
    url = models.URLField(max_length=500, help_text="http(s); the host must be in PROMPTLAB_WEBHOOK_HOSTS.")
    # Kept as is, not hashed: every delivery is signed with it (HMAC-SHA256).
    secret = models.CharField(max_length=100, editable=False)
    events = models.JSONField(default=list, help_text="The events sent; see WebhookEvent.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(
        history_change_reason_field=models.TextField(null=True), excluded_fields=["secret", "created_at", "updated_at"]
    )

    class Meta:
        ordering = ["project", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        from evaluations.governance.webhooks import webhook_url_error

        if self.url and (error := webhook_url_error(self.url)):
            raise ValidationError({"url": error})
        unknown = [event for event in self.events or [] if event not in WebhookEvent.values]
        if unknown or not self.events:
            raise ValidationError({"events": f"Choose one or more of {', '.join(WebhookEvent.values)}."})


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its next attempt
    SENDING = "sending"  # an attempt is in flight (lease_until says until when at most)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt failed, or the URL may no longer be called


class WebhookDelivery(models.Model):
    """One event sent to one webhook, over one or more attempts. `event_id` is the same for
    every webhook and every redelivery of the event: receivers de-duplicate on it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64, choices=WebhookEvent.choices)
    event_id = models.UUIDField()
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created")]

    def __str__(self):
        return f"{self.event} to {self.webhook} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what came back, or why nothing did."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique_number")]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
