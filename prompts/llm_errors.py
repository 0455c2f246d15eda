"""The gateway's errors: transient ones clear up with time (retry them), permanent ones
will fail the same way again (fix the request or the endpoint)."""

from promptlab.errors import DomainError


class GatewayError(DomainError):
    transient = False

    def __init__(self, message: str, *, kind: str, status: int | None = None, retry_after: float | None = None, details=None):
        super().__init__(message, details={"kind": kind, "status": status, **(details or {})})
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class TransientError(GatewayError):
    """Rate limit, timeout, 5xx, connection failure, busy endpoint, open circuit."""

    code = "llm_unavailable"
    transient = True


class PermanentError(GatewayError):
    """Authentication, bad request, context window, content policy, unparsable output."""

    code = "llm_failed"


RAW_BODY_BYTES = 200


def classify(exc: Exception) -> GatewayError:
    """Turn a LiteLLM exception into a TransientError or PermanentError carrying the provider's message."""
    import litellm

    status = getattr(exc, "status_code", None)
    message = _provider_message(exc)
    retry_after = _retry_after(exc)

    def transient(kind):
        return TransientError(f"{kind.replace('_', ' ')}: {message}", kind=kind, status=status, retry_after=retry_after)

    def permanent(kind):
        return PermanentError(f"{kind.replace('_', ' ')}: {message}", kind=kind, status=status)

    if isinstance(exc, litellm.RateLimitError):
        return transient("rate_limit")
    if isinstance(exc, litellm.Timeout):
        return transient("timeout")
    if isinstance(exc, litellm.ContextWindowExceededError):
        return permanent("context_window")
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return permanent("content_policy")
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return permanent("auth")
    if isinstance(exc, (litellm.BadRequestError, litellm.NotFoundError, litellm.UnprocessableEntityError)):
        return permanent("bad_request")
    if isinstance(exc, litellm.APIResponseValidationError):
        return permanent("invalid_response")
    if isinstance(exc, litellm.APIConnectionError) and status in (None, 500) and _looks_like_garbage(exc):
        return permanent("invalid_response")
    if isinstance(exc, litellm.APIConnectionError):
        return transient("connection")
    if status is not None and status >= 500 or status == 408:
        return transient("server_error")
    return permanent("provider_error")


def _provider_message(exc: Exception) -> str:
    message = str(getattr(exc, "message", None) or exc)
    return message[:1000]


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("retry-after")) if headers.get("retry-after") else None
    except ValueError:
        return None


def _looks_like_garbage(exc: Exception) -> bool:
    return False
