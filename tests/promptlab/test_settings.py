"""Settings come from the environment; each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
}))
"""

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "x7#k2!q9Lm@w4Zr8Vt$1Pn6Yb0Hc3Jd5Fg%Se&Ua*Io(Ke)Ql_Xz+Wv=Ry",
    "ALLOWED_HOSTS": "promptlab.example.com",
    "PROMPTLAB_BASE_URL": "https://promptlab.example.com",
    "DATABASE_URL": "postgres://promptlab@db.example.com:5432/promptlab",
    "REDIS_URL": "redis://cache.example.com:6379/0",
}


def run_python(code_or_args, env_overrides, tmp_path):
    # DJANGO_ALLOW_ASYNC_UNSAFE is set for the browser tests and would fail check --deploy.
    ignored = {"DATABASE_URL", "REDIS_URL", "DJANGO_ENV", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {key: value for key, value in os.environ.items() if key not in ignored}
    env.update({"PROMPTLAB_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "promptlab.settings", **env_overrides})
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_with_nothing_set_runs_embedded(tmp_path):
    result = run_python(PRINT_SETTINGS, {}, tmp_path)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "promptlab.sqlite3")
    assert values["cache"].endswith("LocMemCache")
    assert values["broker"].startswith("filesystem://")
    assert values["debug"] is True


def test_database_url_and_redis_url_switch_to_postgres_and_redis(tmp_path):
    result = run_python(
        PRINT_SETTINGS,
        {"DATABASE_URL": "postgres://me@127.0.0.1:5432/promptlab", "REDIS_URL": "redis://127.0.0.1:6379/3"},
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "promptlab"
    assert values["cache"] == "promptlab.redis_cache.ResilientRedisCache"
    assert values["cache_location"] == "redis://127.0.0.1:6379/3"
    assert values["broker"] == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "PROMPTLAB_BASE_URL"])
def test_production_refuses_to_start_without_a_required_variable(missing, tmp_path):
    env = {key: value for key, value in PRODUCTION.items() if key != missing}

    result = run_python(["manage.py", "check"], env, tmp_path)

    assert result.returncode != 0
    assert f"The environment variable {missing} is required but not set." in result.stderr


def test_an_invalid_value_is_named_without_echoing_it(tmp_path):
    result = run_python(["manage.py", "check"], {"DJANGO_DEBUG": "maybe-s3cret"}, tmp_path)

    assert result.returncode != 0
    assert "DJANGO_DEBUG is not valid" in result.stderr
    assert "maybe-s3cret" not in result.stderr


def test_production_passes_the_deployment_checklist(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_settings_would_fail_the_deployment_checklist(tmp_path):
    # The check above only means something if it can fail.
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {}, tmp_path)

    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG is on


def test_every_environment_variable_is_documented_in_the_operator_guide():
    import re

    read = set(re.findall(r'env\("([A-Z_]+)"', (ROOT / "promptlab" / "settings.py").read_text()))
    read |= set(re.findall(r'environ\.get\("([A-Z_]+)"', (ROOT / "promptlab" / "gunicorn.py").read_text()))
    guide = (ROOT / "docs" / "operator-guide" / "configuration.md").read_text()

    assert read and [name for name in sorted(read) if f"`{name}`" not in guide] == []
