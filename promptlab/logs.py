"""Structured logging for web and worker: JSON in production, readable in development.

Every line carries the request id (or the Celery task id) bound in contextvars, and a
processor masks values whose key looks like a secret before anything is rendered.
"""

import logging.config
import re
import time
import uuid

import structlog

# Keys that hold secrets: "api_key", "client_secret", "access_token", "Authorization"... but not
# "prompt_tokens" or "api_key_env" (the *name* of a variable).
SECRET_KEY_PATTERN = re.compile(
    r"(^|[_-])(password|passwd|secret|token|api[_-]?key|authorization|cookie|credentials?|session(id)?)$", re.I
)
REDACTED = "[redacted]"
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

logger = structlog.get_logger("promptlab.http")


def redact_secrets(_logger, _method, event_dict: dict) -> dict:
    """Mask every value whose key names a secret, at any depth of dicts."""
    return _redact(event_dict)


def _redact(value):
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and SECRET_KEY_PATTERN.search(key) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(item) for item in value)
    return value


def configure_logging(*, json_output: bool, level: str) -> None:
    """Route structlog and the standard library through one formatter."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": shared,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                }
            },
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                # Replaced by RequestLogMiddleware's one line per request.
                "django.server": {"level": "WARNING"},
                "django.request": {"level": "ERROR"},
            },
        }
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class RequestLogMiddleware:
    """Give each request an id (kept from X-Request-ID when well formed) and log one line for it.

    Only the path is logged: query strings and headers can carry credentials.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response[REQUEST_ID_HEADER] = request_id
        logger.info(
            "http.request",
            request_id=request_id,
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response
