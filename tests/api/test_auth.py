"""API keys: stored hashed, shown once, scoped, revocable, used by their creator's role;
sessions with CSRF; the create_api_key command; the admin; throttling."""

import hashlib
import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from promptlab.accounts import api_keys
from promptlab.accounts import services as account_services
from promptlab.accounts.models import ApiKey, Membership, Role
from prompts import services as prompt_services
from tests.api.conftest import client_with, error_of
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_as_its_hash_with_a_visible_prefix(owner):
    key, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="bot", scopes=["read"])

    assert re.fullmatch(r"pl_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}", secret)
    assert secret.startswith(key.prefix + "_")
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert all(secret not in str(value) for value in stored.values())


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "not_authenticated"), ("Bearer", "authentication_failed"), ("Bearer a b", "authentication_failed"),
     ("Bearer pl_abcdefgh_" + "x" * 43, "authentication_failed"), ("Bearer not-a-key", "authentication_failed")],
)  # fmt: skip
def test_missing_or_bad_credentials_are_401(prompt, header, code):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/prompts/greet/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert error_of(response)["code"] == code


def test_a_wrong_secret_for_a_real_prefix_is_401(make_key, prompt):
    secret = make_key("read")
    wrong = secret[:-4] + ("aaaa" if not secret.endswith("aaaa") else "bbbb")

    assert client_with(wrong).get("/api/v1/prompts/greet/").status_code == 401
    assert client_with(secret).get("/api/v1/prompts/greet/").status_code == 200


def test_a_revoked_key_is_refused_at_once(make_key, prompt, owner):
    secret = make_key("read")
    client = client_with(secret)
    assert client.get("/api/v1/prompts/greet/").status_code == 200  # the key is cached now

    api_keys.api_key_revoke(key=ApiKey.objects.get(prefix=secret[:11]), actor=owner.user)

    response = client.get("/api/v1/prompts/greet/")
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


def test_only_admins_make_and_revoke_keys(owner):
    editor = MembershipFactory(project=owner.project, role=Role.EDITOR)

    with pytest.raises(Exception, match="needs the admin role"):
        api_keys.api_key_create(project=owner.project, actor=editor.user, name="x", scopes=["read"])


@pytest.mark.parametrize("scopes", [[], ["read", "admin"]])
def test_scopes_must_be_known(owner, scopes):
    with pytest.raises(Exception, match="scopes"):
        api_keys.api_key_create(project=owner.project, actor=owner.user, name="x", scopes=scopes)


WRITES = [
    ("post", "/api/v1/prompts/greet/render/", {"variables": {"name": "A"}}, "render"),
    ("post", "/api/v1/prompts/greet/invoke/", {"variables": {"name": "A"}}, "invoke"),
    ("patch", "/api/v1/prompts/greet/", {"template": "X {{ name }}", "message": "m"}, "write"),
    ("post", "/api/v1/prompts/greet/labels/", {"label": "staging", "version": 2}, "write"),
    ("post", "/api/v1/datasets/", {"name": "cases"}, "write"),
    ("post", "/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "greet"}]}, "run"),
]


@pytest.mark.parametrize(("method", "url", "body", "scope"), WRITES, ids=[f"{m} {u}" for m, u, _, _ in WRITES])
def test_a_read_only_key_cannot_write(make_key, prompt, method, url, body, scope):
    client = client_with(make_key("read"))

    response = getattr(client, method)(url, body, format="json")

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "forbidden" and repr(scope) in error["message"]
    assert prompt.history.count() == 2


def test_a_render_only_key_cannot_read(make_key, prompt):
    client = client_with(make_key("render"))

    assert client.get("/api/v1/prompts/greet/").status_code == 403
    assert client.post("/api/v1/prompts/greet/render/", {"variables": {"name": "A"}}, format="json").status_code == 200


def test_a_key_has_its_creators_role_production_needs_an_admin(make_key, prompt, owner):
    editor = MembershipFactory(project=owner.project, role=Role.ADMIN)
    client = client_with(make_key("write", actor=editor.user))
    account_services.membership_set(project=owner.project, user=editor.user, role=Role.EDITOR, actor=owner.user)

    staging = client.post("/api/v1/prompts/greet/labels/", {"label": "staging", "version": 2}, format="json")
    production = client.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2}, format="json")

    assert staging.status_code == 200
    assert production.status_code == 403 and error_of(production)["details"]["required_role"] == "admin"
    # History names the person who made the key.
    assert prompt.label_moves.get(label="staging").actor == editor.user


def test_a_key_whose_creator_left_the_project_no_longer_works(make_key, prompt, owner):
    admin = MembershipFactory(project=owner.project, role=Role.ADMIN)
    client = client_with(make_key("read", "write", actor=admin.user))
    Membership.objects.filter(pk=admin.pk).delete()

    assert client.get("/api/v1/prompts/greet/").status_code == 401  # tests/accounts/test_api_key_creator.py
    assert client.patch("/api/v1/prompts/greet/", {"template": "X {{ name }}", "message": "m"}, format="json").status_code == 401


def test_a_superusers_key_still_works_only_in_its_project(make_key, prompt, owner, endpoint):
    from tests.factories import ProjectFactory

    other = ProjectFactory()
    prompt_services.prompt_create(project=other, actor=None, name="elsewhere", message="m", template="Hi", endpoint=endpoint)
    root = UserFactory(is_superuser=True, is_staff=True)
    client = client_with(make_key(actor=root))

    assert client.get("/api/v1/prompts/elsewhere/?label=latest").status_code == 404
    assert client.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2}, format="json").status_code == 200


def test_last_used_is_written_at_most_once_a_minute(make_key, prompt):
    secret = make_key("read")
    client = client_with(secret)
    key = ApiKey.objects.get(prefix=secret[:11])
    assert key.last_used_at is None

    client.get("/api/v1/prompts/greet/")
    key.refresh_from_db()
    first = key.last_used_at
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/prompts/greet/")

    key.refresh_from_db()
    assert first is not None and key.last_used_at == first
    assert not [q for q in queries.captured_queries if "prompts_apikey" in q["sql"]]


def test_create_api_key_prints_the_key_alone_on_the_last_line(project, prompt):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", project.slug, "--scopes", "read", "render", "--name", "ci", stdout=out, stderr=err)

    secret = out.getvalue().strip().splitlines()[-1]
    assert out.getvalue().strip() == secret and re.fullmatch(r"pl_\w{8}_[\w-]{43}", secret)
    key = ApiKey.objects.get(prefix=secret[:11])
    assert key.scopes == ["read", "render"] and key.name == "ci" and key.operator and key.created_by is None
    assert "not shown again" in err.getvalue()
    assert client_with(secret).get("/api/v1/prompts/greet/").status_code == 200


def test_an_operator_key_acts_as_the_operator_in_its_project(project, prompt):
    out = io.StringIO()
    call_command("create_api_key", project.slug, "--scopes", "read,write", stdout=out, stderr=io.StringIO())
    client = client_with(out.getvalue().strip())

    response = client.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2}, format="json")

    assert response.status_code == 200


def test_create_api_key_names_an_unknown_project_or_scope(project):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No project"):
        call_command("create_api_key", "nope", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="unknown: delete"):
        call_command("create_api_key", project.slug, "--scopes", "delete", stdout=io.StringIO(), stderr=io.StringIO())


# --- Sessions ----------------------------------------------------------------------------------


def test_a_session_works_with_csrf(prompt, owner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner.user)

    assert client.get("/api/v1/prompts/greet/").status_code == 200
    refused = client.post("/api/v1/prompts/greet/render/", {"variables": {"name": "A"}}, format="json")
    assert refused.status_code == 403 and "CSRF" in error_of(refused)["message"]

    from django.middleware.csrf import _get_new_csrf_string

    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    allowed = client.post("/api/v1/prompts/greet/render/", {"variables": {"name": "A"}}, format="json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 200


def test_a_person_in_several_projects_names_the_project(prompt, owner):
    MembershipFactory(user=owner.user, role=Role.VIEWER)
    client = APIClient()
    client.force_login(owner.user)

    unnamed = client.get("/api/v1/prompts/greet/")
    named = client.get(f"/api/v1/prompts/greet/?project={owner.project.slug}")

    assert unnamed.status_code == 400 and owner.project.slug in error_of(unnamed)["message"]
    assert named.status_code == 200


def test_a_session_sees_only_its_own_projects(prompt):
    stranger = MembershipFactory(role=Role.OWNER)
    client = APIClient()
    client.force_login(stranger.user)

    assert client.get(f"/api/v1/prompts/greet/?project={prompt.project.slug}").status_code == 404
    assert client.get("/api/v1/prompts/greet/").status_code == 404


def test_a_viewers_session_reads_but_cannot_write(prompt):
    viewer = MembershipFactory(project=prompt.project, role=Role.VIEWER)
    client = APIClient()
    client.force_login(viewer.user)

    assert client.get("/api/v1/prompts/greet/").status_code == 200
    assert client.patch("/api/v1/prompts/greet/", {"template": "X", "message": "m"}, format="json").status_code == 403


# --- Admin -------------------------------------------------------------------------------------


def test_the_admin_creates_a_key_and_shows_the_secret_once(client, owner):
    client.force_login(owner.user)

    response = client.post(
        "/admin/accounts/apikey/add/", {"project": owner.project.pk, "name": "support-bot", "scopes": ["read", "invoke"]}
    )

    assert response.status_code == 200
    secret = re.search(r'id="api-key-secret"[^>]*>([^<]+)<', response.content.decode())[1]
    key = ApiKey.objects.get(name="support-bot")
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest() and key.created_by == owner.user
    assert "no-store" in response["Cache-Control"]
    listing = client.get("/admin/accounts/apikey/").content.decode()
    assert key.prefix in listing and secret not in listing
    assert secret not in client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()


def test_the_admin_revokes_keys(client, owner, make_key, prompt):
    secret = make_key("read")
    client.force_login(owner.user)
    key = ApiKey.objects.get(prefix=secret[:11])

    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_by == owner.user
    assert client_with(secret).get("/api/v1/prompts/greet/").status_code == 401


def test_the_admin_shows_keys_only_to_admins_of_their_project(client, owner, make_key):
    make_key("read", name="owners-key")
    editor = MembershipFactory(project=owner.project, role=Role.EDITOR)
    other_admin = MembershipFactory(role=Role.ADMIN)

    client.force_login(editor.user)
    assert client.get("/admin/accounts/apikey/").status_code == 403
    client.force_login(other_admin.user)
    assert "owners-key" not in client.get("/admin/accounts/apikey/").content.decode()


# --- Throttling ---------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after(make_key, prompt, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    client, other = client_with(make_key("read")), client_with(make_key("read"))

    statuses = [client.get("/api/v1/prompts/greet/").status_code for _ in range(4)]
    response = client.get("/api/v1/prompts/greet/")

    assert statuses == [200, 200, 200, 429]
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    error = error_of(response)
    assert error["code"] == "throttled" and error["details"]["retry_after"] == int(response["Retry-After"])
    assert other.get("/api/v1/prompts/greet/").status_code == 200  # per key


def test_the_admin_key_list_makes_as_many_queries_at_n_and_n_plus_20_keys(client, owner, make_key, django_assert_num_queries):
    client.force_login(owner.user)

    for keys in (3, 20):
        for _ in range(keys):
            make_key("read")
        with django_assert_num_queries(22):
            assert client.get("/admin/accounts/apikey/").status_code == 200


@pytest.mark.parametrize("slug", ["a\x00b", "no such", "x" * 300, "their-project"])
def test_a_malformed_unknown_or_foreign_project_slug_is_404(prompt, owner, slug):
    MembershipFactory(project__slug="their-project")
    client = APIClient()
    client.force_login(owner.user)

    response = client.get("/api/v1/prompts/greet/", {"project": slug})

    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": f"There is no project {slug!r}.", "details": {"project": slug}}
