import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, database_url_for, free_port, stop, wait_for_http

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_answers_without_touching_dependencies(client):
    # No django_db mark: any database access would raise here.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_names_an_unreachable_cache(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "promptlab.redis_cache.ResilientRedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["cache"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("unreachable")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url, headers=None):
    """GET without following redirects: (status, headers, body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def production_env(django_db_setup, tmp_path_factory):
    """The Docker image's environment: production settings and collected static files,
    on the test database."""
    from django.db import connection

    static_root = tmp_path_factory.mktemp("static")
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": "k3!vZ9q@Lm2#Wx7$Rt5%Yp8^Bn4&Hc6*Jd1(Fg0)Sa_Ue+Io=Pl-Qw~Er",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PROMPTLAB_BASE_URL": "https://promptlab.example.com",
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "STATIC_ROOT": str(static_root),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return env


def gunicorn(env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:promptlab.gunicorn", "promptlab.wsgi"],
        cwd=ROOT,
        env={**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
    return process, f"http://127.0.0.1:{port}"


def test_with_database_and_redis_down_healthz_serves_and_readyz_names_them(production_env):
    env = {**production_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/promptlab", "REDIS_URL": UNREACHABLE_REDIS}
    process, base = gunicorn(env)
    try:
        status, _, body = get(f"{base}/readyz")
        assert status == 503
        assert json.loads(body)["failed"] == ["database", "cache", "broker"]

        status, _, body = get(f"{base}/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
    finally:
        stop(process)


def test_production_image_serves_pages_and_hashed_static_files(production_env):
    process, base = gunicorn(production_env)
    try:
        status, headers, _ = get(f"{base}/accounts/login/")
        assert status == 301 and headers["Location"].startswith("https://")

        status, headers, page = get(f"{base}/accounts/login/", {"X-Forwarded-Proto": "https"})
        assert status == 200
        assert "Strict-Transport-Security" in headers
        css = next(part for part in page.decode().split('"') if part.startswith("/static/promptlab.") and part.endswith(".css"))
        assert css != "/static/promptlab.css"  # the manifest's content-hashed name

        status, headers, _ = get(f"{base}{css}", {"X-Forwarded-Proto": "https"})
        assert status == 200
        assert "max-age=315360000" in headers["Cache-Control"]
    finally:
        stop(process)
