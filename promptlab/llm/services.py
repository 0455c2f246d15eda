"""Every write to the model catalog."""

import structlog
from django.db import transaction

from promptlab.errors import Forbidden, Invalid, validated
from promptlab.llm.models import ModelEndpoint

logger = structlog.get_logger(__name__)


ENDPOINT_FIELDS = {
    "display_name", "model", "api_base", "api_key_env", "input_cost_per_token", "output_cost_per_token",
    "timeout_seconds", "max_retries", "requests_per_minute", "max_concurrency", "enabled",
}  # fmt: skip


@transaction.atomic
def endpoint_save(*, name: str, actor=None, **fields) -> tuple[ModelEndpoint, bool]:
    """Create the model endpoint `name` or update the given fields; (endpoint, created).

    The catalog is shared by all projects, so only superusers (or the operator's CLI) edit it.
    """
    unknown = set(fields) - ENDPOINT_FIELDS
    if unknown:
        raise Invalid(f"Unknown model endpoint fields: {', '.join(sorted(unknown))}.")
    if actor is not None and not actor.is_superuser:
        raise Forbidden("Only superusers may change the model catalog.")
    endpoint = ModelEndpoint.objects.select_for_update().filter(name=name).first()
    created = endpoint is None
    if created:
        endpoint = ModelEndpoint(name=name, display_name=fields.get("display_name") or name)
    changed = sorted(field for field, value in fields.items() if getattr(endpoint, field) != value)
    for field, value in fields.items():
        setattr(endpoint, field, value)
    validated(endpoint, f"model endpoint {name!r}")
    if created or changed:  # re-running a command with the same values records nothing
        endpoint._history_user = actor
        endpoint._change_reason = "Created" if created else f"Changed {', '.join(changed)}"
        endpoint.save()
    logger.info("llm.endpoint_saved", endpoint=name, created=created)
    return endpoint, created
