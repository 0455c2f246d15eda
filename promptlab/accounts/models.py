"""Accounts and tenancy: projects, who belongs to them with which role, and API keys.

The tables keep the names they had when these models lived in `prompts` (a state-only move).
"""

from django.conf import settings
from django.core.validators import validate_slug
from django.db import models
from simple_history.models import HistoricalRecords


class Project(models.Model):
    """The tenant: every prompt, dataset, experiment, evaluator and API key belongs to one."""

    slug = models.SlugField(max_length=64, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    # Set by owners on the approvals page (promptlab.accounts.services.project_require_approval_set), never
    # in a form that could save it past the service: hence not editable.
    require_approval = models.BooleanField(
        default=False, editable=False,
        help_text="Production moves only through an approved proposal (a rollback, or an owner's written override, excepted).",
    )  # fmt: skip
    history = HistoricalRecords(table_name="prompts_historicalproject", history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at"])

    class Meta:
        db_table = "prompts_project"
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
    history = HistoricalRecords(table_name="prompts_historicalmembership", history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at"])

    class Meta:
        db_table = "prompts_membership"
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_project_user"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]
        ordering = ["project", "user__email"]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.project}"


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
    history = HistoricalRecords(table_name="prompts_historicalapikey", history_change_reason_field=models.TextField(null=True), excluded_fields=["secret_hash", "last_used_at", "created_at"]
    )

    class Meta:
        db_table = "prompts_apikey"
        ordering = ["project", "-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
