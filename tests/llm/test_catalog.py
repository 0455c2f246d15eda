import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from promptlab.llm import limits
from promptlab.llm.models import ModelEndpoint
from tests.conftest import ROOT
from tests.factories import MembershipFactory, ModelEndpointFactory, UserFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/llm/modelendpoint/"


def test_add_model_endpoint_creates_then_updates(capsys):
    call_command(
        "add_model_endpoint", "gpt-mini", "--model", "openai/gpt-4o-mini", "--display-name", "GPT-4o mini",
        "--api-key-env", "OPENAI_API_KEY", "--rpm", "500", "--max-concurrency", "8", "--timeout", "30",
        "--input-cost-per-token", "0.00000015", "--output-cost-per-token", "0.0000006",
    )  # fmt: skip
    call_command("add_model_endpoint", "gpt-mini", "--disabled", "--rpm", "100")

    endpoint = ModelEndpoint.objects.get(name="gpt-mini")
    assert (endpoint.display_name, endpoint.model, endpoint.api_key_env) == ("GPT-4o mini", "openai/gpt-4o-mini", "OPENAI_API_KEY")
    assert (endpoint.requests_per_minute, endpoint.max_concurrency, endpoint.timeout_seconds) == (100, 8, 30)
    assert endpoint.input_cost_per_token == Decimal("0.00000015") and not endpoint.enabled
    out = capsys.readouterr().out
    assert "Added model endpoint gpt-mini" in out and "Updated model endpoint gpt-mini" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "openai/x", "--api-base", "https://169.254.169.254/v1"], "not in PROMPTLAB_API_BASE_HOSTS"),
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
    assert "not in PROMPTLAB_API_BASE_HOSTS" in response.content.decode()
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
