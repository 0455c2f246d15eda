"""The base of every domain error. Each app raises subclasses; callers map them to HTTP,
form errors or command errors in one place each, using `code`."""

from django.http import Http404


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(DomainError, Http404):
    """Also Django's Http404, so one selector serves the API (its error body) and the pages
    (the 404 page) alike."""

    code = "not_found"


class Invalid(DomainError):
    code = "invalid"


class Forbidden(DomainError):
    code = "forbidden"


class Unavailable(DomainError):
    code = "unavailable"


def validated(instance, what: str, **full_clean):
    """The model instance after its full_clean(), or Invalid naming every field's problem."""
    from django.core.exceptions import ValidationError

    try:
        instance.full_clean(**full_clean)
    except ValidationError as exc:
        problems = {field: " ".join(messages) for field, messages in exc.message_dict.items()}
        summary = "; ".join(message if field == "__all__" else f"{field}: {message}" for field, message in problems.items())
        raise Invalid(f"Invalid {what}: {summary}", details=problems) from None
    return instance
