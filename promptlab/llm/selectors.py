"""Reads of the model catalog."""

from promptlab.errors import NotFound
from promptlab.llm.models import ModelEndpoint


def endpoint_get(*, name: str) -> ModelEndpoint:
    """The catalog's model endpoint by name; NotFound otherwise."""
    endpoint = ModelEndpoint.objects.filter(name=name).first()
    if endpoint is None:
        raise NotFound(f"There is no model named {name!r} in the catalog.", details={"model": name})
    return endpoint
