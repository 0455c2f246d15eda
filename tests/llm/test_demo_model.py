import pytest

from promptlab.llm import gateway
from tests.factories import ModelEndpointFactory

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "schema": {
            "type": "object",
            "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "label": {"enum": ["good", "bad"]}},
            "required": ["score", "label"],
        },
    },
}


@pytest.fixture
def demo():
    return ModelEndpointFactory(model="promptlab-demo/echo", display_name="Demo model")


def test_the_demo_model_answers_deterministically_offline(demo, socket_guard):
    messages = [{"role": "user", "content": "Summarise our refund policy"}]

    first = gateway.complete(endpoint=demo, messages=messages, params={"temperature": 0.9})
    second = gateway.complete(endpoint=demo, messages=messages, params={"temperature": 0.9})

    assert first.text == second.text and "Summarise our refund policy" in first.text
    assert first.cost == 0 and first.prompt_tokens > 0 and first.completion_tokens > 0
    assert socket_guard == []  # not one network connection


def test_the_demo_model_honours_a_json_schema(demo):
    result = gateway.complete(endpoint=demo, messages=[{"role": "user", "content": "rate"}], params={"response_format": SCHEMA})

    assert result.data == {"score": 1, "label": "good"}


def test_the_demo_model_is_labelled_wherever_it_is_shown(demo, client, django_user_model):
    assert str(demo) == "Demo model — demo (offline)"
    client.force_login(django_user_model.objects.create_superuser("root@example.com", "root@example.com", "x"))

    page = client.get("/admin/llm/modelendpoint/").content.decode()

    assert "Demo model — demo (offline)" in page
