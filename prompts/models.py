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
