import json
import os
import subprocess
import sys

from promptlab.logs import REDACTED, redact_secrets
from tests.conftest import ROOT

EMIT_JSON_LINE = """
import django, structlog
django.setup()
structlog.contextvars.bind_contextvars(request_id="req-42")
structlog.get_logger("promptlab.test").info(
    "prompts.endpoint_saved", endpoint_id=7, api_key="sk-live-123", config={"password": "hunter2", "model": "gpt"}
)
"""


def test_secrets_are_masked_at_any_depth():
    event = {
        "event": "x",
        "api_key": "sk-1",
        "Authorization": "Bearer abc",
        "nested": {"client_secret": "s", "items": [{"token": "t", "name": "kept"}]},
        "model": "gpt-4o",
    }

    assert redact_secrets(None, "info", event) == {
        "event": "x",
        "api_key": REDACTED,
        "Authorization": REDACTED,
        "nested": {"client_secret": REDACTED, "items": [{"token": REDACTED, "name": "kept"}]},
        "model": "gpt-4o",
    }


def test_production_logs_are_json_lines_with_the_request_id_and_no_secrets(tmp_path):
    env = {**os.environ, "LOG_FORMAT": "json", "PROMPTLAB_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)

    result = subprocess.run(
        [sys.executable, "-c", EMIT_JSON_LINE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "prompts.endpoint_saved"
    assert line["request_id"] == "req-42"
    assert line["endpoint_id"] == 7
    assert line["level"] == "info"
    assert line["api_key"] == REDACTED and line["config"] == {"password": REDACTED, "model": "gpt"}
    assert "sk-live-123" not in result.stderr and "hunter2" not in result.stderr


def test_a_well_formed_request_id_is_kept_and_echoed(client, caplog):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="edge-7f3a.1")

    assert response["X-Request-ID"] == "edge-7f3a.1"
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)]
    assert {"event": "http.request", "request_id": "edge-7f3a.1", "path": "/healthz", "status": 200}.items() <= (
        logged[-1].items()
    )


def test_a_malformed_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")

    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_query_strings_are_not_logged(client, caplog):
    client.get("/healthz?api_key=sk-live-999")

    assert "sk-live-999" not in caplog.text
