"""Governance: proposals to move production and their decisions, in-app notifications, and
webhooks with their deliveries.

The tables keep the names they had when these models lived in `evaluations` (a state-only move).
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from experiments.models import Experiment
from promptlab.accounts.models import Project


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
        db_table = "evaluations_approvalrequest"
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
        db_table = "evaluations_notification"
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
    history = HistoricalRecords(table_name="evaluations_historicalwebhook", history_change_reason_field=models.TextField(null=True), excluded_fields=["secret", "created_at", "updated_at"]
    )

    class Meta:
        db_table = "evaluations_webhook"
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
        db_table = "evaluations_webhookdelivery"
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
        db_table = "evaluations_webhookattempt"
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique_number")]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
