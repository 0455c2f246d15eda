import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, validate_slug
from django.db import models
from django.db.models.signals import pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords


class Project(models.Model):
    """The tenant: every prompt, dataset, experiment, evaluator and API key belongs to one."""

    slug = models.SlugField(max_length=64, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    # Set by owners on the approvals page (prompts.services.project_require_approval_set), never
    # in a form that could save it past the service: hence not editable.
    require_approval = models.BooleanField(
        default=False, editable=False,
        help_text="Production moves only through an approved proposal (rollbacks and the operator's CLI excepted).",
    )  # fmt: skip
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    # Declared from least to most powerful: access.py ranks roles by this order.
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_project_user"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]
        ordering = ["project", "user__email"]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.project}"


DEMO_PROVIDER = "promptlab-demo"


class ModelEndpoint(models.Model):
    """A model that people can pick, and how promptlab calls it through LiteLLM.

    The API key is never stored: `api_key_env` names the environment variable of the web
    and worker processes that holds it.
    """

    name = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used in scripts and the API.")
    display_name = models.CharField(max_length=200)
    model = models.CharField(
        max_length=200, help_text="LiteLLM model string, e.g. openai/gpt-4o-mini or anthropic/claude-3-5-haiku-latest."
    )
    api_base = models.URLField(
        blank=True, help_text="Only for self-hosted or proxied models; the host must be in PROMPTLAB_API_BASE_HOSTS."
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(
                r"^[A-Z_][A-Z0-9_]*$",
                "Enter the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself.",
            )
        ],
        help_text="Name of the environment variable holding the API key, e.g. OPENAI_API_KEY.",
    )
    input_cost_per_token = models.DecimalField(
        max_digits=16, decimal_places=12, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="USD per prompt token. Empty: LiteLLM's bundled price list.",
    )  # fmt: skip
    output_cost_per_token = models.DecimalField(
        max_digits=16, decimal_places=12, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="USD per completion token. Empty: LiteLLM's bundled price list.",
    )  # fmt: skip
    timeout_seconds = models.FloatField(default=60, validators=[MinValueValidator(0.1), MaxValueValidator(900)])
    max_retries = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(10)], help_text="Retries after a transient failure (rate limit, timeout, 5xx)."
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Shared by all workers. Empty: no limit."
    )
    max_concurrency = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Calls in flight at once, across all workers. Empty: no limit.",
    )  # fmt: skip
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at", "updated_at"])

    class Meta:
        ordering = ["display_name"]

    def __str__(self):
        return f"{self.display_name} — demo (offline)" if self.is_demo else self.display_name

    @property
    def is_demo(self) -> bool:
        return self.model.startswith(f"{DEMO_PROVIDER}/")

    def clean(self):
        from prompts.catalog import api_base_error

        if self.api_base and (error := api_base_error(self.api_base)):
            raise ValidationError({"api_base": error})
        if "/" not in self.model:
            raise ValidationError({"model": "Give the provider too, e.g. openai/gpt-4o-mini."})
        if (self.input_cost_per_token is None) != (self.output_cost_per_token is None):
            raise ValidationError("Set both prices per token, or neither to use LiteLLM's price list.")


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


class ApiKeyScope(models.TextChoices):
    """What an API key may call; the creator's role still decides every write."""

    READ = "read", "Read prompts, datasets and experiments"
    RENDER = "render", "Render prompts"
    INVOKE = "invoke", "Invoke prompts and report feedback"
    WRITE = "write", "Create versions, move labels, edit datasets"
    RUN = "run", "Create and run experiments"


class ApiKey(models.Model):
    """A project's key for the REST API. Only a hash of the secret is kept; `prefix` is the
    visible part that names the key in lists and logs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, help_text="What uses the key, e.g. support-bot production.")
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)  # sha256 hex of the whole key
    scopes = models.JSONField(default=list)
    # The key acts with its creator's role in its project; a key of the operator's CLI
    # (`operator`) acts as the operator there. A key whose creator is deleted has no role.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    operator = models.BooleanField(default=False, editable=False, help_text="Made by the operator's create_api_key command.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Not the hash (history is read more widely than the key table), nor each use.
    history = HistoricalRecords(
        history_change_reason_field=models.TextField(null=True), excluded_fields=["secret_hash", "last_used_at", "created_at"]
    )

    class Meta:
        ordering = ["project", "-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class PromptCallStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class CallResult(models.Model):
    """What a model call's row keeps: the messages sent and the answer or the failure, as
    prompts.gateway.answer_fields / failure_fields give them. Experiment runs, playground
    calls and API calls all extend it."""

    messages = models.JSONField(default=list, blank=True, help_text="The rendered messages sent.")
    output = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cached = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


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

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"], name="prompt_call_project_created")]

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
