"""What every REST endpoint shares: the one error shape, the JSON parser's limits, paging,
the schema's common parts, and the `/api/v1/` URL list that each app's apis.py adds to.

Every error is `{"error": {"code", "message", "details"}}`: domain errors (promptlab.errors)
and DRF's own exceptions are mapped here, once. An exception that reaches Django
unmapped is a bug and stays a 500.
"""

import json
import math

import structlog
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.urls import Resolver404, include, path, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from promptlab.errors import DomainError, Forbidden, Invalid, NotFound, Unavailable
from promptlab.json_values import no_constant, unstorable

logger = structlog.get_logger(__name__)


# --- Errors ------------------------------------------------------------------------------------


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


DOMAIN_STATUS = [(NotFound, 404), (Forbidden, 403), (Unavailable, 503), (Invalid, 400)]
# Errors of the LLM gateway, by code, for the invoke endpoint's failures; and a render refused
# because every render slot of the process stayed taken (it carries Retry-After).
CODE_STATUS = {"llm_unavailable": 503, "llm_failed": 502, "invoke_timeout": 504, "render_busy": 503}
DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid",
    RequestTooLarge: "too_large",
}


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if isinstance(details, dict) else {}}}


def exception_handler(exc, context):
    """REST_FRAMEWORK's EXCEPTION_HANDLER: every known error as the one JSON shape."""
    headers = {}
    if isinstance(exc, DomainError):
        code = exc.code
        status_code = CODE_STATUS.get(code) or next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 400)
        message, details = exc.message, exc.details
        if retry_after := getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(math.ceil(retry_after))
    else:
        if isinstance(exc, Http404):
            exc = exceptions.NotFound(*exc.args or ["Not found."])
        elif isinstance(exc, PermissionDenied):
            exc = exceptions.PermissionDenied(*exc.args)
        elif isinstance(exc, RequestDataTooBig):
            exc = RequestTooLarge(str(exc) or "The request body is too large.")
        if not isinstance(exc, exceptions.APIException):
            return None
        status_code = exc.status_code
        code = next((code for cls, code in DRF_CODES.items() if isinstance(exc, cls)), "error")
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        if isinstance(exc, exceptions.ValidationError):
            details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            message = "Invalid input: " + _summary(details)
        else:
            message, details = str(exc.detail), {}
        if isinstance(exc, exceptions.Throttled):
            message = f"Too many requests: try again in {headers.get('Retry-After', 'a few')} seconds."
            details = {"retry_after": int(headers.get("Retry-After", 1))}
    set_rollback()
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def _summary(details, prefix: str = "") -> str:
    """The first problems of a DRF error tree in one line: `variables: This field is required.`"""
    parts = []
    if isinstance(details, dict):
        for field, value in details.items():
            name = field if field != "non_field_errors" else ""
            parts.append(_summary(value, f"{prefix}.{name}" if prefix and name else prefix or name))
    elif isinstance(details, list):
        if all(not isinstance(item, (dict, list)) for item in details):
            text = " ".join(str(item) for item in details)
            return f"{prefix}: {text}" if prefix else text
        parts.extend(_summary(item, f"{prefix}[{n}]") for n, item in enumerate(details) if item)
    else:
        return f"{prefix}: {details}" if prefix else str(details)
    return "; ".join(part for part in parts[:5] if part)


@csrf_exempt  # it changes nothing, and an API client's POST carries a key, not a CSRF token
def no_endpoint(request):
    """Every URL under /api/ that names no endpoint (an unknown path, or an identifier of the wrong
    form such as a call id that is not a UUID): the JSON 404. A route rather than only handler404,
    because with DEBUG on Django answers an unmatched URL with its own HTML page."""
    message = f"No endpoint at {request.path}."
    if not request.path_info.endswith("/") and _is_endpoint(request.path_info + "/"):
        message += f" API URLs end with a slash: {request.path}/."
    return JsonResponse(error_body("not_found", message), status=404)


def _is_endpoint(path: str) -> bool:
    try:
        return resolve(path).func is not no_endpoint
    except Resolver404:
        return False


def page_not_found(request, exception):
    """handler404: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return no_endpoint(request)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON under /api/. The error itself is logged by Django."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal", "Internal error: it has been logged."), status=500)
    return defaults.server_error(request)


# --- Parsing -----------------------------------------------------------------------------------


class BoundedJSONParser(parsers.JSONParser):
    """JSON bodies of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 beyond), without values the
    database cannot store (NUL, unpaired surrogates, infinities), nested at most 64 deep."""

    def parse(self, stream, media_type=None, parser_context=None):
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"The request body is not UTF-8: {exc.reason} at byte {exc.start}.") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}.") from None
        except RecursionError:
            raise exceptions.ParseError("Malformed JSON: nested too deeply.") from None
        if problem := unstorable(data):
            raise exceptions.ParseError(f"The JSON body contains {problem}, which cannot be stored.")
        return data


def named_in_body(lookup, **kwargs):
    """What a selector finds for a name given in the request body: one that does not exist is
    invalid input (400), not a missing resource (404)."""
    try:
        return lookup(**kwargs)
    except NotFound as exc:
        raise Invalid(exc.message, details=exc.details) from None


# --- Paging ------------------------------------------------------------------------------------


SLUG = r"^[-a-zA-Z0-9_]+$"  # names of prompts, datasets, evaluators and projects in URLs and bodies


class Pages(PageNumberPagination):
    """`?page=N&page_size=M` (at most 200); answers {count, next, previous, results}."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def page_of(view: APIView, queryset, serialize) -> Response:
    """One page of the queryset: `serialize` gets the page's rows and returns their documents."""
    pages = Pages()
    rows = pages.paginate_queryset(queryset, view.request, view=view)
    return pages.get_paginated_response(serialize(rows))


def paged(serializer_class, name: str | None = None):
    """The schema of a page of `serializer_class` items."""
    return type(
        name or f"Paged{serializer_class.__name__.removesuffix('Serializer')}",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


# --- Schema ------------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: not_found, invalid, missing_variables, ...")
    message = serializers.CharField(help_text="What is wrong, in words a person can act on.")
    details = serializers.DictField(help_text="Specifics, e.g. the missing variable names or the field errors.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


PROJECT_PARAMETER = OpenApiParameter(
    "project", str, OpenApiParameter.QUERY, required=False,
    description="Project slug. Only for people signed in with a session who belong to several projects; "
    "an API key always works in its own project (naming another one answers 404).",
)  # fmt: skip
ERRORS_ALWAYS = {401: "Missing, malformed or revoked credentials.", 403: "The key lacks the scope, or the role does not allow it.",
                 429: "Too many requests: see Retry-After."}  # fmt: skip
ERRORS_WITH_BODY = {400: "Invalid input: the message and details name the problem.", 413: "The body is too large.",
                    415: "Unsupported content type."}  # fmt: skip


class ApiSchema(AutoSchema):
    """Every project-scoped operation documents the error shape for the errors it can answer,
    the `project` parameter, and slug patterns for its `name` path parameter."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if getattr(self.view, "project_scoped", False):
            parameters = [*parameters, PROJECT_PARAMETER]
            if "{name}" in self.path:
                parameters.append(OpenApiParameter("name", str, OpenApiParameter.PATH, pattern=r"^[-a-zA-Z0-9_]+$"))
        return parameters

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not getattr(self.view, "project_scoped", False):
            return operation
        errors = {**ERRORS_ALWAYS, 400: "Invalid input: the message and details name the problem.",
                  404: "Not found (or in another project)."}  # fmt: skip
        if self.method in ("POST", "PATCH", "PUT"):
            errors |= ERRORS_WITH_BODY
        error = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for code, description in sorted(errors.items()):
            operation["responses"].setdefault(str(code), {"content": error, "description": description})
        return operation


# --- URLs ------------------------------------------------------------------------------------

# Each app lists its endpoints in `urlpatterns` at the end of its apis.py. Evaluations serves
# evaluators, scores and comparisons, and experiments/ (whose create takes evaluators).
API_MODULES = ["prompts.apis", "experiments.apis", "evaluations.apis"]


def api_urlpatterns() -> list:
    """The endpoints under /api/v1/ (a function, so that importing this module loads no views)."""
    return [path("", include(module)) for module in API_MODULES]
