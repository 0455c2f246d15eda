"""The outbound policy (promptlab.llm.outbound) on model calls, over real HTTP to the fake
OpenAI-compatible server: redirects are never followed, names that resolve to private or
loopback addresses and non-public IP literals are refused unless listed exactly, and an empty
api_base is checked as the provider's public host."""

import socket

import pytest
from django.core.management import CommandError, call_command

from promptlab.errors import Invalid
from promptlab.llm import gateway, outbound
from promptlab.llm.errors import PermanentError
from promptlab.llm.models import ModelEndpoint
from tests.factories import ModelEndpointFactory
from tests.fake_openai import FakeOpenAI, Scripted

pytestmark = pytest.mark.django_db
HELLO = [{"role": "user", "content": "Say hello to Ada"}]


@pytest.fixture
def elsewhere():
    """A second server, on an allowed host: a redirect to it must not be followed either."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def resolver(monkeypatch):
    """DNS answers for made-up names (as an attacker's DNS server would give them); other names resolve as usual."""
    answers, real = {}, socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


# --- Redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, base",
    [("openai/gpt-4o-mini", "{server.base_url}"),  # through the OpenAI SDK
     ("anthropic/claude-3-5-haiku-latest", "{server.url}")],  # through LiteLLM's own HTTP client
    ids=["openai-sdk", "litellm-http"],
)  # fmt: skip
def test_a_redirect_is_a_permanent_error_and_is_not_followed(endpoint, llm_server, elsewhere, model, base):
    endpoint.model, endpoint.api_base = model, base.format(server=llm_server)
    llm_server.script(Scripted.redirect(f"http://localhost:{elsewhere.port}/v1/chat/completions", body=b'{"aws_secret": "AKIA-LEAKED"}'))

    with pytest.raises(PermanentError) as caught:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    error = caught.value
    assert (error.kind, error.status) == ("redirect", 307)
    assert "answered HTTP 307 to the host 'localhost'" in error.message and "never follows redirects" in error.message
    assert "AKIA-LEAKED" not in error.message and "aws_secret" not in error.message
    assert len(llm_server.requests) == 1  # permanent: not retried
    assert elsewhere.requests == []


# --- Addresses --------------------------------------------------------------------------------


def test_a_name_that_resolves_to_loopback_is_refused_under_a_pattern(endpoint, llm_server, settings, socket_guard):
    endpoint.api_base = f"http://localhost:{llm_server.port}/v1"
    settings.PROMPTLAB_API_BASE_HOSTS = ["*"]

    with pytest.raises(PermanentError, match=r"The host 'localhost' resolves to .*, not a public address \(loopback\)") as caught:
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert caught.value.kind == "refused" and socket_guard == []  # refused before connecting


def test_listing_the_name_exactly_lets_it_reach_a_loopback_address(endpoint, llm_server, settings):
    endpoint.api_base = f"http://localhost:{llm_server.port}/v1"
    settings.PROMPTLAB_API_BASE_HOSTS = ["localhost"]

    assert gateway.complete(endpoint=endpoint, messages=HELLO).text == "fake answer to: Say hello to Ada"
    assert len(llm_server.requests) == 1


def test_a_dns_answer_is_checked_at_each_request(endpoint, llm_server, settings, resolver):
    """The name passes the allowlist when the endpoint is saved; what it resolves to is checked
    when it is called, so a DNS answer that changes later (rebinding) is refused then."""
    settings.PROMPTLAB_API_BASE_HOSTS = ["*.example.com"]
    resolver["llm.example.com"] = "127.0.0.1"
    endpoint.api_base = f"http://llm.example.com:{llm_server.port}/v1"
    endpoint.full_clean()  # saving checks names only: no DNS lookup

    with pytest.raises(PermanentError, match=r"The host 'llm.example.com' resolves to 127.0.0.1, not a public address \(loopback\); .*"
                                             r"only when PROMPTLAB_API_BASE_HOSTS lists the host or the address exactly"):  # fmt: skip
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert llm_server.requests == []

    resolver["llm.example.com"] = "10.1.2.3"
    with pytest.raises(PermanentError, match=r"resolves to 10.1.2.3, not a public address \(private\)"):
        gateway.complete(endpoint=endpoint, messages=HELLO)

    settings.PROMPTLAB_API_BASE_HOSTS = ["*.example.com", "127.0.0.1"]  # the address listed exactly
    resolver["llm.example.com"] = "127.0.0.1"
    assert gateway.complete(endpoint=endpoint, messages=HELLO).attempts == 1
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize(
    "api_base, problem",
    [("http://169.254.169.254/latest", r"169.254.169.254 is not a public address \(link-local\)"),
     ("http://127.0.0.1:8000/v1", r"127.0.0.1 is not a public address \(loopback\)"),
     ("http://[::ffff:127.0.0.1]/v1", r"::ffff:127.0.0.1 is not a public address \(loopback\)"),
     ("http://10.0.0.8/v1", r"10.0.0.8 is not a public address \(private\)"),
     ("http://0.0.0.0/v1", r"0.0.0.0 is not a public address \(unspecified\)"),
     ("http://224.0.0.1/v1", r"224.0.0.1 is not a public address \(multicast\)")],
    ids=["metadata", "loopback", "mapped-loopback", "private", "unspecified", "multicast"],
)  # fmt: skip
def test_a_non_public_ip_literal_is_refused_under_a_pattern(settings, socket_guard, api_base, problem):
    settings.PROMPTLAB_API_BASE_HOSTS = ["*"]

    with pytest.raises(CommandError, match=problem):
        call_command("add_model_endpoint", "metadata", "--model", "openai/x", "--api-base", api_base)
    with pytest.raises(Invalid, match=problem):
        gateway.complete(endpoint=ModelEndpointFactory(api_base=api_base), messages=HELLO)
    assert not ModelEndpoint.objects.filter(name="metadata").exists() and socket_guard == []


def test_an_address_listed_exactly_is_allowed_and_a_public_one_needs_no_listing(settings):
    settings.PROMPTLAB_API_BASE_HOSTS = ["169.254.169.254", "*.example.com"]

    assert outbound.url_error("http://169.254.169.254/v1", setting=outbound.MODEL_HOSTS) is None
    assert outbound.url_error("https://api.example.com/v1", setting=outbound.MODEL_HOSTS) is None
    assert "not in PROMPTLAB_API_BASE_HOSTS" in outbound.url_error("http://169.254.169.253/v1", setting=outbound.MODEL_HOSTS)
    assert "is not an http(s) URL" in outbound.url_error("http://x.example.com:port/v1", setting=outbound.MODEL_HOSTS)


# --- An empty api_base -------------------------------------------------------------------------


def test_ollama_without_an_api_base_is_localhost_and_refused_unless_localhost_is_allowed(settings, socket_guard):
    settings.PROMPTLAB_API_BASE_HOSTS = ["*.example.com"]
    with pytest.raises(CommandError, match=r"With an empty api_base, ollama models are called at http://localhost:11434\. "
                                           r"The host 'localhost' is not in PROMPTLAB_API_BASE_HOSTS"):  # fmt: skip
        call_command("add_model_endpoint", "local", "--model", "ollama/llama3")
    local = ModelEndpointFactory(model="ollama/llama3")
    with pytest.raises(Invalid, match="ollama models are called at http://localhost:11434"):
        gateway.complete(endpoint=local, messages=HELLO)

    settings.PROMPTLAB_API_BASE_HOSTS = ["*"]  # the name passes; its address does not
    with pytest.raises(PermanentError, match=r"The host 'localhost' resolves to .*, not a public address \(loopback\)"):
        gateway.complete(endpoint=local, messages=HELLO)
    assert socket_guard == [] and not ModelEndpoint.objects.filter(name="local").exists()


def test_a_provider_without_an_api_base_is_checked_at_its_public_host(settings):
    settings.PROMPTLAB_API_BASE_HOSTS = ["llm-proxy.internal"]
    with pytest.raises(CommandError, match=r"openai models are called at https://api.openai.com\. The host 'api.openai.com' is not in"):
        call_command("add_model_endpoint", "gpt", "--model", "openai/gpt-4o-mini")

    settings.PROMPTLAB_API_BASE_HOSTS = ["llm-proxy.internal", "api.openai.com"]
    call_command("add_model_endpoint", "gpt", "--model", "openai/gpt-4o-mini")
    assert ModelEndpoint.objects.filter(name="gpt").exists()


def test_a_provider_with_no_known_host_needs_an_api_base_in_production(settings):
    settings.PROMPTLAB_API_BASE_HOSTS = ["*.amazonaws.com"]
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="promptlab does not know which host LiteLLM calls for 'bedrock' models without an api_base"):
        call_command("add_model_endpoint", "nova", "--model", "bedrock/amazon.nova-lite-v1:0")

    call_command("add_model_endpoint", "nova", "--model", "bedrock/amazon.nova-lite-v1:0",
                 "--api-base", "https://bedrock-runtime.us-east-1.amazonaws.com")  # fmt: skip
    assert ModelEndpoint.objects.get(name="nova").api_base == "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_the_demo_model_calls_nothing_and_needs_no_allowed_host(settings, socket_guard):
    settings.PROMPTLAB_API_BASE_HOSTS = []
    call_command("add_model_endpoint", "demo", "--model", "promptlab-demo/echo")

    result = gateway.complete(endpoint=ModelEndpoint.objects.get(name="demo"), messages=HELLO)

    assert result.text.startswith("(demo answer") and socket_guard == []
