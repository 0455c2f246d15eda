import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.signals import pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords

from promptlab.accounts.models import ApiKey, Project
from promptlab.llm.models import CallResult, ModelEndpoint


class Kind(models.TextChoices):
    TEXT = "text", "Text"
    CHAT = "chat", "Chat"


class PromptContent:
    """What a prompt and each of its historical versions say, and how to read it."""

    def parts(self) -> list[tuple[str, str]]:
        """(where, template source) for every template in the prompt, for parsing and errors."""
        if self.kind == Kind.TEXT:
            return [("Template", self.template)]
        return [
            (f"Message {number}", message["content"])
            for number, message in enumerate(self.messages or [], start=1)
            if "content" in message
        ]

    def placeholders(self) -> list[str]:
        return [message["placeholder"] for message in self.messages or [] if "placeholder" in message]

    def source_text(self) -> str:
        """The text a snippet contributes where another prompt includes it."""
        from promptlab.errors import Invalid

        if self.kind != Kind.TEXT:
            raise Invalid(f"{self.name!r} is a chat prompt; only text prompts can be included.")
        return self.template


class Prompt(PromptContent, models.Model):
    """A named prompt of a project. Every save through prompts.services is a new version,
    kept immutably in `history` with its author and change message."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    name = models.SlugField(max_length=100, help_text="Unique in the project; services fetch the prompt by it.")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEXT)
    template = models.TextField(blank=True, help_text="Text prompts: a Jinja2 template, e.g. Hello {{ name }}.")
    messages = models.JSONField(
        default=list, blank=True,
        help_text='Chat prompts: [{"role": "system", "content": "..."}, {"placeholder": "history"}, ...]',
    )  # fmt: skip
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="prompts", verbose_name="model")
    params = models.JSONField(default=dict, blank=True, help_text='e.g. {"temperature": 0.2, "max_tokens": 300}')
    variables = models.JSONField(
        default=list, blank=True,
        help_text='Declared variables: [{"name": "customer", "type": "string", "required": true, "default": null, "description": "..."}]',
    )  # fmt: skip
    strict_variables = models.BooleanField(default=True, help_text="Refuse variables the prompt does not use.")
    used_variables = models.JSONField(default=list, editable=False)
    version = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(
        bases=[PromptContent, models.Model], history_change_reason_field=models.TextField(null=True), excluded_fields=["updated_at"]
    )

    CONTENT_FIELDS = ["description", "tags", "kind", "template", "messages", "endpoint_id", "params", "variables", "strict_variables"]  # fmt: skip

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="prompt_unique_name_per_project")]

    def __str__(self):
        return self.name


class Label(models.Model):
    """A named pointer at one version of a prompt: how a version ships and rolls back."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.SlugField(max_length=50)
    version = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt", "name"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="label_unique_per_prompt"),
            models.CheckConstraint(condition=~models.Q(name="latest"), name="label_latest_is_implicit"),
        ]

    def __str__(self):
        return f"{self.name} → v{self.version}"


class LabelMove(models.Model):
    """One move of a label: who, when, from which version to which."""

    # Kept when the prompt is deleted: the audit trail outlives it.
    prompt = models.ForeignKey(Prompt, null=True, on_delete=models.SET_NULL, related_name="label_moves")
    prompt_name = models.SlugField(max_length=100)
    label = models.SlugField(max_length=50)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField(blank=True)
    moved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-moved_at", "-id"]

    def __str__(self):
        return f"{self.label}: v{self.from_version or '-'} → v{self.to_version}"


@receiver(pre_save, sender=Prompt.history.model)
def _versions_are_immutable(sender, instance, **kwargs):
    """A saved version is history: changing one would rewrite what shipped."""
    if not instance._state.adding:
        raise ValidationError("Prompt versions are immutable; save a new version instead (revert does).")






class PromptCallStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"




class PromptCall(CallResult):
    """One call through the serving API's invoke: production traffic, logged for analytics.
    The web process records it; a worker makes the model call and fills in the result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_calls")
    # Kept when the prompt is deleted: the log outlives it.
    prompt = models.ForeignKey(Prompt, null=True, on_delete=models.SET_NULL, related_name="calls")
    prompt_name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    label = models.SlugField(max_length=50, blank=True, help_text="The label asked for, if any.")
    endpoint = models.ForeignKey(ModelEndpoint, null=True, on_delete=models.SET_NULL, related_name="prompt_calls")
    model = models.CharField(max_length=200, help_text="The LiteLLM model string at the time of the call.")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    vars = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=PromptCallStatus.choices, default=PromptCallStatus.PENDING)
    error_code = models.CharField(max_length=32, blank=True)  # the domain error's code, e.g. llm_unavailable
    created_at = models.DateTimeField(auto_now_add=True)
    # The worker making it holds it until then, renewing as it waits (promptlab.leases); past it, its worker died.
    lease_until = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="prompt_call_project_created"),
            # The few open calls, which recovery scans for those whose worker died or whose message was lost.
            models.Index(fields=["status", "created_at"], condition=models.Q(status__in=["pending", "running"]), name="prompt_call_open"),
        ]

    def __str__(self):
        return f"call {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (PromptCallStatus.DONE, PromptCallStatus.FAILED)


class CallFeedback(models.Model):
    """What a production user thought of a call's answer: thumbs, a score, a comment, or several."""

    call = models.ForeignKey(PromptCall, on_delete=models.CASCADE, related_name="feedback")
    thumbs = models.SmallIntegerField(null=True, blank=True, choices=[(1, "up"), (-1, "down")])
    score = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)])
    comment = models.TextField(blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["call", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(thumbs__isnull=False) | models.Q(score__isnull=False) | ~models.Q(comment=""),
                name="call_feedback_not_empty",
            ),
            models.CheckConstraint(condition=models.Q(thumbs__in=[1, -1]) | models.Q(thumbs__isnull=True), name="call_feedback_thumbs_valid"),
        ]

    def __str__(self):
        return f"feedback on {self.call_id}"
