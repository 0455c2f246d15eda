"""The model catalog's rules: which endpoints may be called, and with what key.

Everything here is checked before any network call, so a misconfigured endpoint fails
with a message that names the fix.
"""

import functools
import importlib.util
import json
import os
import re
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from promptlab.errors import Invalid
from promptlab.llm import outbound
from promptlab.llm.models import DEMO_PROVIDER, KEY_ENV_NAME, ModelEndpoint

# Where LiteLLM sends a provider's calls when api_base is empty: that host must be allowed like
# any api_base. A provider missing here (azure, bedrock, vertex_ai: hosts per resource or region)
# needs an api_base in production.
PROVIDER_BASES = {
    "openai": "https://api.openai.com", "text-completion-openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com", "anthropic_text": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com", "mistral": "https://api.mistral.ai",
    "groq": "https://api.groq.com", "deepseek": "https://api.deepseek.com", "together_ai": "https://api.together.ai",
    "fireworks_ai": "https://api.fireworks.ai", "openrouter": "https://openrouter.ai", "cohere": "https://api.cohere.ai",
    "cohere_chat": "https://api.cohere.ai", "xai": "https://api.x.ai", "perplexity": "https://api.perplexity.ai",
    "cerebras": "https://api.cerebras.ai", "deepinfra": "https://api.deepinfra.com", "voyage": "https://api.voyageai.com",
    "ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434",
}  # fmt: skip


def api_base_error(url: str) -> str | None:
    """Why `url` may not be used as an api_base, or None when it may (the SSRF guard)."""
    return outbound.url_error(url, setting=outbound.MODEL_HOSTS)


def endpoint_base_error(model: str, api_base: str) -> str | None:
    """Why an endpoint of `model` at `api_base` may not be called, or None: an empty api_base
    means the provider's public host, which must be allowed too. The demo model calls nothing."""
    if api_base:
        return api_base_error(api_base)
    provider = model.split("/", 1)[0]
    if provider == DEMO_PROVIDER:
        return None
    default = PROVIDER_BASES.get(provider)
    if default is None:
        if not settings.PRODUCTION:
            return None  # the host LiteLLM picks is still checked on every request
        return (f"promptlab does not know which host LiteLLM calls for {provider!r} models without an api_base; "
                f"set the api_base (its host must be in {outbound.MODEL_HOSTS}).")  # fmt: skip
    if error := api_base_error(default):
        return f"With an empty api_base, {provider} models are called at {default}. {error}"
    return None


def key_env_error(name: str) -> str | None:
    """Why `name` may not hold an endpoint's API key, or None: only variables named for it may,
    so that no other secret of the processes (DATABASE_URL, SECRET_KEY...) is ever sent as a key."""
    prefix = settings.PROMPTLAB_KEY_ENV_PREFIX
    if name.startswith(prefix) or not re.match(KEY_ENV_NAME, name):  # not a name at all: the field's validator says so
        return None
    return (f"The API key variable {name} must start with {prefix} (PROMPTLAB_KEY_ENV_PREFIX), e.g. {prefix}{name}: "
            "promptlab reads keys only from variables named for them.")  # fmt: skip


def key_env_for(name: str) -> str:
    """The variable promptlab reads a key from that another tool reads from `name`: renamed to
    the prefix rule, so promptfoo's OPENAI_API_KEY is PROMPTLAB_KEY_OPENAI_API_KEY here."""
    prefix = settings.PROMPTLAB_KEY_ENV_PREFIX
    return name if not name or name.startswith(prefix) else prefix + name


def endpoint_credentials(endpoint: ModelEndpoint) -> dict:
    """The api_base and api_key for a call, or a clear error when the endpoint may not be called."""
    if not endpoint.enabled:
        raise Invalid(f"The model endpoint {endpoint.name!r} is disabled.", details={"endpoint": endpoint.name})
    if error := endpoint_base_error(endpoint.model, endpoint.api_base):
        raise Invalid(error, details={"endpoint": endpoint.name, "api_base": endpoint.api_base})
    credentials = {"api_base": endpoint.api_base} if endpoint.api_base else {}
    if error := key_env_error(endpoint.api_key_env):
        raise Invalid(error, details={"endpoint": endpoint.name, "api_key_env": endpoint.api_key_env})
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env)
        if not key:
            raise Invalid(
                f"The model endpoint {endpoint.name!r} needs its API key in the environment variable "
                f"{endpoint.api_key_env}, which is not set for this process.",
                details={"endpoint": endpoint.name, "api_key_env": endpoint.api_key_env},
            )
        credentials["api_key"] = key
    return credentials


@functools.cache
def _bundled_prices() -> dict:
    """LiteLLM's bundled price list, read from its package without importing LiteLLM."""
    folder = Path(importlib.util.find_spec("litellm").submodule_search_locations[0])
    return json.loads((folder / "model_prices_and_context_window_backup.json").read_text())


def prices_per_token(endpoint: ModelEndpoint) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per token: the endpoint's own, else LiteLLM's bundled list; None if unknown."""
    if endpoint.is_demo:
        return Decimal(0), Decimal(0)
    if endpoint.input_cost_per_token is not None and endpoint.output_cost_per_token is not None:
        return endpoint.input_cost_per_token, endpoint.output_cost_per_token
    prices = _bundled_prices()
    for key in (endpoint.model, endpoint.model.split("/", 1)[-1]):
        entry = prices.get(key)
        if entry and "input_cost_per_token" in entry:
            return Decimal(str(entry["input_cost_per_token"])), Decimal(str(entry.get("output_cost_per_token", 0)))
    return None


def cost_usd(endpoint: ModelEndpoint, prompt_tokens: int, completion_tokens: int = 0) -> Decimal | None:
    """What these tokens cost on the endpoint, at its prices per token; None when it has no price.
    Billed calls and the estimates held against budgets are both priced here."""
    prices = prices_per_token(endpoint)
    return prices[0] * prompt_tokens + prices[1] * completion_tokens if prices else None
