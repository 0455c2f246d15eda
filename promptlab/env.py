"""The one way settings read the environment: typed, with safe defaults, loud when required."""

import os

from django.core.exceptions import ImproperlyConfigured

REQUIRED = object()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def as_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected one of 1, 0, true, false, yes, no, on, off")


def as_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def env(name: str, default=REQUIRED, *, cast=str):
    """Return the variable `name` converted by `cast`, or `default` when it is unset or empty.

    With `default=REQUIRED` an unset variable stops startup with a message naming it. The
    raw value is never echoed back, because it may be a secret.
    """
    raw = os.environ.get(name, "")
    if raw == "":
        if default is REQUIRED:
            raise ImproperlyConfigured(f"The environment variable {name} is required but not set.")
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"The environment variable {name} is not valid: {exc}.") from None
