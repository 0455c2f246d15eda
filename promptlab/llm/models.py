"""The model catalog, and the fields every model call's row keeps.

ModelEndpoint's table keeps the name it had when it lived in `prompts` (a state-only move).
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

DEMO_PROVIDER = "promptlab-demo"
KEY_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"  # the name of an environment variable


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
        blank=True,
        help_text="Only for self-hosted or proxied models; the host must be in PROMPTLAB_API_BASE_HOSTS. Empty: the "
        "provider's public host, which must be in that setting too.",
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(
                KEY_ENV_NAME,
                "Enter the NAME of an environment variable (e.g. PROMPTLAB_KEY_OPENAI), never the key itself.",
            )
        ],
        help_text="Name of the environment variable holding the API key, e.g. PROMPTLAB_KEY_OPENAI; it must start "
        "with PROMPTLAB_KEY_ENV_PREFIX (PROMPTLAB_KEY_ by default).",
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
    history = HistoricalRecords(table_name="prompts_historicalmodelendpoint", history_change_reason_field=models.TextField(null=True), excluded_fields=["created_at", "updated_at"])

    class Meta:
        db_table = "prompts_modelendpoint"
        ordering = ["display_name"]

    def __str__(self):
        return f"{self.display_name} — demo (offline)" if self.is_demo else self.display_name

    @property
    def is_demo(self) -> bool:
        return self.model.startswith(f"{DEMO_PROVIDER}/")

    def clean(self):
        from promptlab.llm.catalog import endpoint_base_error, key_env_error

        if "/" not in self.model:
            raise ValidationError({"model": "Give the provider too, e.g. openai/gpt-4o-mini."})
        if error := endpoint_base_error(self.model, self.api_base):
            raise ValidationError({"api_base": error})
        if error := key_env_error(self.api_key_env):
            raise ValidationError({"api_key_env": error})
        if (self.input_cost_per_token is None) != (self.output_cost_per_token is None):
            raise ValidationError("Set both prices per token, or neither to use LiteLLM's price list.")


class CallResult(models.Model):
    """What a model call's row keeps: the messages sent and the answer or the failure, as
    promptlab.llm.gateway.answer_fields / failure_fields give them. Experiment runs, playground
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


# A call's cost is unknown when an answer came back (its tokens are counted) from a model that
# has no price: cost_usd is then None. A call that got no answer billed nothing, so its empty
# cost is no unknown. A sum over calls that include one of these is unknown, never partial.
COST_UNKNOWN = models.Q(cost_usd__isnull=True, prompt_tokens__isnull=False)
