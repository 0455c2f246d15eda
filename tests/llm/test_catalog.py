import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from promptlab.errors import Invalid
from promptlab.llm import gateway, limits
from promptlab.llm.models import ModelEndpoint
from tests.conftest import ROOT
from tests.factories import MembershipFactory, ModelEndpointFactory, UserFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/llm/modelendpoint/"


def test_add_model_endpoint_creates_then_updates(capsys):
    call_command(
        "add_model_endpoint", "gpt-mini", "--model", "openai/gpt-4o-mini", "--display-name", "GPT-4o mini",
        "--api-key-env", "PROMPTLAB_KEY_OPENAI", "--rpm", "500", "--max-concurrency", "8", "--timeout", "30",
        "--input-cost-per-token", "0.00000015", "--output-cost-per-token", "0.0000006",
    )  # fmt: skip
    call_command("add_model_endpoint", "gpt-mini", "--disabled", "--rpm", "100")

    endpoint = ModelEndpoint.objects.get(name="gpt-mini")
    assert (endpoint.display_name, endpoint.model, endpoint.api_key_env) == ("GPT-4o mini", "openai/gpt-4o-mini", "PROMPTLAB_KEY_OPENAI")
    assert (endpoint.requests_per_minute, endpoint.max_concurrency, endpoint.timeout_seconds) == (100, 8, 30)
    assert endpoint.input_cost_per_token == Decimal("0.00000015") and not endpoint.enabled
    out = capsys.readouterr().out
    assert "Added model endpoint gpt-mini" in out and "Updated model endpoint gpt-mini" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "openai/x", "--api-base", "https://169.254.169.254/v1"], r"169.254.169.254 is not a public address \(link-local\)"),
        (["--model", "openai/x", "--api-key-env", "sk-live-abc"], "the NAME of an environment variable"),
        (["--model", "gpt-4o"], "Give the provider too"),
        (["--model", "openai/x", "--input-cost-per-token", "0.1"], "Set both prices per token"),
        ([], "model: This field cannot be blank"),
    ],
)
def test_add_model_endpoint_refuses_bad_input_and_saves_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_model_endpoint", "bad", *args)
    assert not ModelEndpoint.objects.exists()


def test_api_base_allowlist_accepts_listed_hosts_and_patterns(settings):
    settings.PROMPTLAB_API_BASE_HOSTS = ["llm-proxy.internal", "*.openai.azure.com"]
    call_command("add_model_endpoint", "azure", "--model", "azure/gpt-4o", "--api-base", "https://acme.openai.azure.com")
    call_command("add_model_endpoint", "proxy", "--model", "openai/x", "--api-base", "http://llm-proxy.internal:4000/v1")
    with pytest.raises(CommandError):
        call_command("add_model_endpoint", "evil", "--model", "openai/x", "--api-base", "http://127.0.0.1:4000/v1")
    assert set(ModelEndpoint.objects.values_list("name", flat=True)) == {"azure", "proxy"}


def test_the_key_variable_must_carry_the_prefix_when_saved_and_when_called(settings, llm_server, monkeypatch):
    monkeypatch.setenv("DATABASE_URL_COPY", "postgres://secret")
    with pytest.raises(CommandError, match=r"DATABASE_URL_COPY must start with PROMPTLAB_KEY_ \(PROMPTLAB_KEY_ENV_PREFIX\)"):
        call_command("add_model_endpoint", "leaky", "--model", "openai/x", "--api-key-env", "DATABASE_URL_COPY")
    # A row saved before the rule (or behind the service's back) is refused at call time: nothing is sent.
    endpoint = ModelEndpointFactory(api_base=llm_server.base_url, api_key_env="DATABASE_URL_COPY")
    with pytest.raises(Invalid, match="DATABASE_URL_COPY must start with PROMPTLAB_KEY_"):
        gateway.complete(endpoint=endpoint, messages=[{"role": "user", "content": "hi"}])
    assert llm_server.requests == [] and not ModelEndpoint.objects.filter(name="leaky").exists()

    settings.PROMPTLAB_KEY_ENV_PREFIX = "ACME_LLM_"
    call_command("add_model_endpoint", "acme", "--model", "openai/x", "--api-key-env", "ACME_LLM_OPENAI")
    assert ModelEndpoint.objects.get(name="acme").api_key_env == "ACME_LLM_OPENAI"


def test_members_may_look_at_the_catalog_but_only_superusers_edit_it(client):
    endpoint = ModelEndpointFactory()
    client.force_login(MembershipFactory().user)

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    response = client.post(f"{CHANGELIST}{endpoint.pk}/change/", {"display_name": "hacked"})
    assert response.status_code == 403


def test_the_admin_form_rejects_an_api_base_outside_the_allowlist(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    data = {"name": "x", "display_name": "X", "model": "openai/x", "api_base": "http://10.0.0.8/v1", "api_key_env": "",
            "timeout_seconds": "60", "max_retries": "2", "enabled": "on"}  # fmt: skip

    response = client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 200
    assert "10.0.0.8 is not a public address (private)" in response.content.decode()
    assert not ModelEndpoint.objects.exists()


def test_the_admin_shows_prices_and_the_breaker_and_can_reset_it(client, settings):
    settings.GATEWAY_BREAKER_FAILURES = 1
    endpoint = ModelEndpointFactory(display_name="GPT-4o mini")
    limits.breaker_record_failure(endpoint)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    page = client.get(CHANGELIST).content.decode()
    assert "0.15 / 0.6 (LiteLLM)" in page
    assert "open for" in page

    client.post(CHANGELIST, {"action": "reset_circuit_breaker", "_selected_action": [endpoint.pk]})
    assert str(limits.breaker_state(endpoint)) == "closed"


def test_litellm_is_not_imported_until_a_model_is_called(tmp_path):
    code = (
        "import sys, django; django.setup()\n"
        "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "import promptlab.urls, promptlab.llm.gateway, prompts.admin\n"
        "Client().get('/healthz'); Client().get('/accounts/login/')\n"
        "print('litellm' in sys.modules)\n"
    )
    env = {**os.environ, "PROMPTLAB_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
