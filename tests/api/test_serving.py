"""Fast prompt fetch: cached per (project, name, label or version), ETag and 304,
invalidated by saves and label moves, answered from the database when Redis is down."""

import pytest

from prompts import services as prompt_services
from tests.api.conftest import client_with

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_a_cached_fetch_touches_no_database(api, prompt, django_assert_num_queries):
    first = api.get("/api/v1/prompts/greet/")
    api.get("/api/v1/prompts/greet/")  # the key's last use is recorded on the first request only

    with django_assert_num_queries(0):
        again = api.get("/api/v1/prompts/greet/")

    assert again.status_code == 200 and again.content == first.content


def test_etag_and_if_none_match_answer_304(api, prompt):
    first = api.get("/api/v1/prompts/greet/")
    etag = first["ETag"]

    not_modified = api.get("/api/v1/prompts/greet/", HTTP_IF_NONE_MATCH=etag)
    listed = api.get("/api/v1/prompts/greet/", HTTP_IF_NONE_MATCH=f'"other", W/{etag}')
    stale = api.get("/api/v1/prompts/greet/", HTTP_IF_NONE_MATCH='"something-else"')

    assert etag.startswith('"') and first["Cache-Control"] == "private, no-cache"
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified["ETag"] == etag
    assert listed.status_code == 304
    assert stale.status_code == 200 and stale["ETag"] == etag


def test_a_pinned_version_may_be_kept_a_minute(api, prompt):
    response = api.get("/api/v1/prompts/greet/?version=1")

    assert response["Cache-Control"] == "private, max-age=60"
    assert "Authorization" in response["Vary"]


def test_a_new_version_invalidates_latest_and_the_etag(api, prompt, owner):
    before = api.get("/api/v1/prompts/greet/?label=latest")

    prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="third", template="Yo {{ name }}")
    after = api.get("/api/v1/prompts/greet/?label=latest", HTTP_IF_NONE_MATCH=before["ETag"])

    assert after.status_code == 200
    assert after.json()["version"] == 3 and after.json()["template"] == "Yo {{ name }}"
    assert after["ETag"] != before["ETag"]


def test_a_label_move_invalidates_the_label_and_both_versions(api, prompt, owner):
    assert api.get("/api/v1/prompts/greet/").json()["version"] == 1
    assert api.get("/api/v1/prompts/greet/versions/2/").json()["labels"] == []

    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)

    assert api.get("/api/v1/prompts/greet/").json()["version"] == 2
    assert api.get("/api/v1/prompts/greet/versions/2/").json()["labels"] == ["production"]
    assert api.get("/api/v1/prompts/greet/versions/1/").json()["labels"] == []


def test_a_move_through_the_api_and_a_rollback_invalidate_too(api, prompt):
    api.get("/api/v1/prompts/greet/")
    api.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2}, format="json")
    assert api.get("/api/v1/prompts/greet/").json()["version"] == 2

    api.post("/api/v1/prompts/greet/labels/", {"label": "production", "rollback": True}, format="json")
    assert api.get("/api/v1/prompts/greet/").json()["version"] == 1


def test_a_deleted_prompt_is_gone_from_the_cache(api, prompt, owner):
    api.get("/api/v1/prompts/greet/")

    prompt_services.prompt_delete(prompt=prompt, actor=owner.user)

    assert api.get("/api/v1/prompts/greet/").status_code == 404


def test_a_revert_invalidates(api, prompt, owner):
    api.get("/api/v1/prompts/greet/?label=latest")

    prompt_services.prompt_revert(prompt=prompt, actor=owner.user, version=1)

    assert api.get("/api/v1/prompts/greet/?label=latest").json()["template"] == "Hello {{ name }}!"


def test_with_redis_down_the_api_answers_from_the_database(make_key, prompt, owner, settings):
    secret = make_key("read", "render", "write")
    settings.CACHES = {"default": {"BACKEND": "promptlab.redis_cache.ResilientRedisCache", "LOCATION": DEAD_REDIS,
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}  # fmt: skip
    client = client_with(secret)

    fetched = client.get("/api/v1/prompts/greet/")
    rendered = client.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}}, format="json")
    moved = client.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2}, format="json")

    assert fetched.status_code == 200 and fetched.json()["version"] == 1
    assert rendered.json()["text"] == "Hello Ada!"
    assert moved.status_code == 200
    assert client.get("/api/v1/prompts/greet/").json()["version"] == 2
    assert client.get("/api/v1/prompts/greet/", HTTP_IF_NONE_MATCH=fetched["ETag"]).status_code == 200
