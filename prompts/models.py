from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, validate_slug
from django.db import models


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
