"""The model catalog's rules: which endpoints may be called, and with what key.

Everything here is checked before any network call, so a misconfigured endpoint fails
with a message that names the fix.
"""

import functools
import importlib.util
import json
import os
from decimal import Decimal
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from promptlab.errors import Invalid
from promptlab.llm.models import ModelEndpoint


def api_base_error(url: str) -> str | None:
    """Why `url` may not be used as an api_base, or None when it may (the SSRF guard)."""
    return outbound_url_error(url, setting="PROMPTLAB_API_BASE_HOSTS")


def outbound_url_error(url: str, *, setting: str) -> str | None:
    """Why promptlab may not call `url`, or None when its host matches a pattern of the
    named allowlist setting: nothing outside an operator's list is ever called."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"{url!r} is not an http(s) URL."
    allowed = getattr(settings, setting)
    if not any(fnmatch(parts.hostname.lower(), pattern.lower()) for pattern in allowed):
        listed = ", ".join(allowed) or "none"
        return f"The host {parts.hostname!r} is not in {setting} (allowed: {listed}). An operator must add it to that setting."
    return None


def endpoint_credentials(endpoint: ModelEndpoint) -> dict:
    """The api_base and api_key for a call, or a clear error when the endpoint may not be called."""
    if not endpoint.enabled:
        raise Invalid(f"The model endpoint {endpoint.name!r} is disabled.", details={"endpoint": endpoint.name})
    credentials = {}
    if endpoint.api_base:
        if error := api_base_error(endpoint.api_base):
            raise Invalid(error, details={"endpoint": endpoint.name, "api_base": endpoint.api_base})
        credentials["api_base"] = endpoint.api_base
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
