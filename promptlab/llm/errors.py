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
    """Turn a LiteLLM exception into a TransientError or PermanentError with the provider's message.

    LiteLLM wraps what happened: the OpenAI client's own exception (with the real HTTP
    status, or the connection failure) sits in the __context__ chain, and a body that
    could not be parsed surfaces as a 500 that no server sent.
    """
    import httpx
    import litellm
    import openai

    chain = _chain(exc)
    # promptlab's own refusal raised inside the HTTP client (promptlab.llm.outbound), whatever LiteLLM made of it.
    if refused := next((e for e in chain if isinstance(e, GatewayError)), None):
        return refused
    status = getattr(exc, "status_code", None)
    # LiteLLM's own classes subclass the OpenAI client's too: only the client's own error
    # proves that a server really answered with that status.
    sent_status = next(
        (e.status_code for e in chain if isinstance(e, openai.APIStatusError) and not type(e).__module__.startswith("litellm")),
        None,
    ) or next((e.response.status_code for e in chain if isinstance(e, httpx.HTTPStatusError)), None)
    connection_failed = any(
        isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError) for e in chain
    )
    message = str(getattr(exc, "message", None) or exc)[:1000]
    code = getattr(exc, "code", None)

    def transient(kind):
        return TransientError(f"{kind.replace('_', ' ')}: {message}", kind=kind, status=status, retry_after=_retry_after(exc))

    def permanent(kind):
        return PermanentError(f"{kind.replace('_', ' ')}: {message}", kind=kind, status=status)

    if isinstance(exc, litellm.Timeout) or status == 408:
        return transient("timeout")
    if connection_failed:
        return transient("connection")
    if isinstance(exc, litellm.RateLimitError):
        return transient("rate_limit")
    if isinstance(exc, litellm.ContextWindowExceededError):
        return permanent("context_window")
    if isinstance(exc, litellm.ContentPolicyViolationError) or code == "content_filter":
        return permanent("content_policy")
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status == 403:
        return permanent("auth")
    if isinstance(exc, (litellm.BadRequestError, litellm.NotFoundError, litellm.UnprocessableEntityError)):
        return permanent("bad_request")
    if status is not None and status >= 500 and sent_status is not None:
        return transient("server_error")
    # A 5xx that no server sent, or anything else: the answer could not be understood.
    return permanent("invalid_response")


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _retry_after(exc: Exception) -> float | None:
    # LiteLLM's exc.response is a stand-in without headers; the real ones are kept here.
    headers = getattr(exc, "litellm_response_headers", None) or {}
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None
