"""Where promptlab may send a request: model calls (PROMPTLAB_API_BASE_HOSTS) and webhooks
(PROMPTLAB_WEBHOOK_HOSTS), the SSRF guard.

Three rules, each needed. The URL's host must match a pattern of the setting's allowlist. Every
address it stands for must be public (not private, loopback, link-local, reserved or multicast)
unless the setting lists the host or the address exactly: a pattern such as "*" or
"*.example.com" never reaches 127.0.0.1, 10.0.0.5 or 169.254.169.254 (a cloud's metadata service),
whatever a DNS answer says. And a redirect is never followed: it could point anywhere.

The name is checked before a call and on every request; the addresses are checked as each
connection is made, on the very addresses connected to, so a DNS answer that changes between
the checks (DNS rebinding) cannot slip through. `http_client` gives an httpx client that does all
of this; `guard_litellm` makes every LiteLLM request go through one.
"""

import ipaddress
import socket
from fnmatch import fnmatch
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from promptlab.llm.errors import PermanentError

MODEL_HOSTS = "PROMPTLAB_API_BASE_HOSTS"
DEFAULT_TIMEOUT_SECONDS = 600.0  # LiteLLM's own default; model calls pass the endpoint's timeout
_WILDCARDS = "*?["


class OutboundRefused(PermanentError):
    """A request the policy stopped before anything was sent (or a redirect it did not follow).
    Permanent: the same request would be refused again."""

    def __init__(self, message: str, *, kind: str = "refused", status: int | None = None):
        super().__init__(message, kind=kind, status=status)


def url_error(url: str, *, setting: str) -> str | None:
    """Why promptlab may not call `url` under the allowlist `setting`, or None when it may.
    A host given by name has its addresses checked when it is called (see `_CheckedBackend`)."""
    parts = urlsplit(url)
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host = None
    if parts.scheme not in {"http", "https"} or not host:
        return f"{url!r} is not an http(s) URL."
    allowed = getattr(settings, setting)
    if not any(fnmatch(host.lower(), pattern.lower()) for pattern in allowed):
        listed = ", ".join(allowed) or "none"
        return f"The host {host!r} is not in {setting} (allowed: {listed}). An operator must add it to that setting."
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_error(host, address, setting=setting)


def address_error(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, setting: str) -> str | None:
    """Why `host` may not be reached at `address`, or None: a public address always may, any
    other only when the setting lists the host or the address exactly."""
    kind = _non_public(address)
    if kind is None or _listed_exactly(host, setting) or _listed_exactly(str(address), setting):
        return None
    try:
        what = f"{host} is" if ipaddress.ip_address(host) == address else None
    except ValueError:
        what = None
    return (
        f"{what or f'The host {host!r} resolves to {address},'} not a public address ({kind}); promptlab calls such "
        f"addresses only when {setting} lists the host or the address exactly (a pattern such as * or *.example.com "
        "is not enough)."
    )


def _non_public(address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1 is 127.0.0.1
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def _listed_exactly(value: str, setting: str) -> bool:
    exact = {pattern.lower() for pattern in getattr(settings, setting) if not any(char in pattern for char in _WILDCARDS)}
    return value.lower() in exact


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses that `address_error` allows, resolving the name itself so the
    address checked is the address connected to."""

    def __init__(self, setting: str):
        self.setting = setting

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
        for address in addresses:
            if error := address_error(host, address, setting=self.setting):
                raise OutboundRefused(error)
        failure = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:  # in the resolver's order, as socket.create_connection tries them
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport, connecting through _CheckedBackend (httpx has no option for a
    network backend, so its connection pool is replaced by one that has it)."""

    def __init__(self, setting: str):
        super().__init__()
        limits = httpx.Limits()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(setting),
        )  # fmt: skip


def http_client(*, setting: str, timeout=DEFAULT_TIMEOUT_SECONDS, refuse_redirects: bool = True) -> httpx.Client:
    """An httpx client that calls only what `setting` allows and never follows a redirect; with
    `refuse_redirects` a 3xx answer raises OutboundRefused (naming the status and the Location's
    host, never the body), else it is returned as an answer. Proxies from the environment are
    not used: the addresses a proxy connects to could not be checked."""

    def check_request(request: httpx.Request) -> None:
        if error := url_error(str(request.url), setting=setting):
            raise OutboundRefused(error)

    return httpx.Client(
        transport=_CheckedTransport(setting), timeout=timeout, follow_redirects=False, trust_env=False,
        event_hooks={"request": [check_request], "response": [_refuse_redirect] if refuse_redirects else []},
    )  # fmt: skip


def _refuse_redirect(response: httpx.Response) -> None:
    if 300 <= response.status_code < 400:
        location = response.headers.get("location", "")
        target = f"to the host {response.request.url.join(location).host!r}" if location else "without a Location"
        raise OutboundRefused(
            f"redirect refused: {response.request.url.host!r} answered HTTP {response.status_code} {target}; promptlab never "
            "follows redirects of model calls, so the endpoint's api_base must be the address that answers.",
            kind="redirect",
            status=response.status_code,
        )


def guard_litellm(litellm) -> None:
    """Make every request LiteLLM sends go through a checked client for PROMPTLAB_API_BASE_HOSTS:
    the OpenAI SDK's (litellm.client_session: openai and the OpenAI-compatible providers, azure)
    and LiteLLM's own HTTPHandler (every other provider, and what LiteLLM fetches itself, such as
    image URLs in messages). LiteLLM makes HTTPHandlers in many places, each with its own client
    that follows redirects, so the one method that makes those clients is replaced."""
    from litellm.llms.custom_httpx.http_handler import HTTPHandler

    litellm.client_session = http_client(setting=MODEL_HOSTS)
    HTTPHandler.create_client = lambda handler: http_client(setting=MODEL_HOSTS, timeout=handler.timeout or DEFAULT_TIMEOUT_SECONDS)
    litellm.module_level_client = HTTPHandler()
