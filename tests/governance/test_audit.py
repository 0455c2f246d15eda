"""The audit log page: every change to prompts, labels, datasets, evaluators, endpoints,
members, API keys, webhooks, approvals and project settings, with who, when and what changed;
filters by object, user and date; CSV export; pagination with a constant number of queries."""

import csv
import io
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from django.utils import timezone

from evaluations import services as evaluations
from evaluations.governance import approvals, webhooks
from evaluations.governance.audit import KINDS
from experiments import datasets
from promptlab.accounts import api_keys
from promptlab.accounts import services as account_services
from promptlab.accounts.models import Role
from promptlab.llm import services as llm_services
from prompts import services as prompts
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def history():
    """A project where each kind of change was made once or more, by its owner or the editor."""
    owner = MembershipFactory(role=Role.OWNER, user__email="owner@example.com").user
    project = owner.memberships.get().project
    editor = UserFactory(email="pm@example.com")
    account_services.membership_set(project=project, user=editor, role=Role.EDITOR, actor=owner)
    account_services.membership_set(project=project, user=editor, role=Role.ADMIN, actor=owner)
    endpoint, _ = llm_services.endpoint_save(name="demo", actor=None, display_name="Demo", model="promptlab-demo/echo")
    llm_services.endpoint_save(name="demo", actor=UserFactory(is_superuser=True, email="root@example.com"), timeout_seconds=20)
    prompt = prompts.prompt_create(project=project, actor=editor, name="faq", message="First draft", template="Answer: {{ q }}", endpoint=endpoint)
    prompts.prompt_update(prompt=prompt, actor=editor, message="Friendlier", template="Happy to help: {{ q }}")
    prompts.label_move(prompt=prompt, actor=owner, label="production", version=2, message="Ship it")
    dataset = datasets.dataset_create(project=project, actor=editor, name="cases", description="Real questions")
    datasets.dataset_import(dataset=dataset, actor=editor, file=io.BytesIO(b"q\none\ntwo\nthree\n"), format="csv")
    check = evaluations.evaluator_create(project=project, actor=editor, name="polite", kind="contains", config={"value": "please"})
    evaluations.evaluator_update(evaluator=check, actor=editor, message="Case-insensitive", kind="icontains")
    key, _ = api_keys.api_key_create(project=project, actor=owner, name="support bot", scopes=["read"])
    api_keys.api_key_revoke(key=key, actor=owner)
    webhooks.webhook_create(project=project, actor=owner, name="Slack", url="http://127.0.0.1:9/hook", events=["label.moved"])
    account_services.project_require_approval_set(project=project, actor=owner, required=True)
    approval = approvals.approval_propose(prompt=prompt, actor=editor, version=1, message="Back to basics")
    approvals.approval_reject(approval=approval, actor=owner, comment="No")
    account_services.membership_remove(project=project, user=editor, actor=owner)
    return project, owner, editor


def audit(client, project, query="", **headers):
    return client.get(f"/projects/{project.slug}/audit/{query}", **headers)


def rows(response) -> list[dict]:
    page = BeautifulSoup(response.content, "html.parser")
    return [
        {"kind": row["data-kind"], "who": row.select_one(".who").get_text(strip=True), "object": row.select_one(".object").get_text(" ", strip=True),
         "action": row.select_one(".action").get_text(strip=True), "reason": (row.select_one(".reason") or row).get_text(strip=True),
         "changes": [" ".join(item.get_text().split()) for item in row.select(".changes li")]}
        for row in page.select("#audit-entries tr.entry")
    ]  # fmt: skip


def test_every_kind_of_change_is_listed_with_who_and_what(history, client):
    project, owner, editor = history
    client.force_login(owner)

    entries = rows(audit(client, project))

    def find(kind, action):
        return next(entry for entry in entries if entry["kind"] == kind and entry["action"].startswith(action))

    saved = find("prompt", "saved version 2")
    assert saved["who"] == "pm@example.com" and saved["reason"] == "Friendlier"
    assert "template: Answer: {{ q }} → Happy to help: {{ q }}" in saved["changes"]
    created = find("prompt", "created version 1")
    assert "model: Demo — demo (offline)" in created["changes"] and created["object"] == "Prompt faq"
    label = find("label", "moved production to version 2")
    assert label["who"] == "owner@example.com" and label["changes"] == ["production: v2"] and label["reason"] == "Ship it"
    assert find("dataset", "changed")["reason"] == "Added 3 items (csv)"
    assert find("dataset", "created")["who"] == "pm@example.com"
    evaluator = find("evaluator", "changed")
    assert evaluator["reason"] == "Case-insensitive" and "kind: contains → icontains" in evaluator["changes"]
    endpoint = find("endpoint", "changed")
    assert endpoint["who"] == "root@example.com" and endpoint["changes"] == ["timeout seconds: 60.0 → 20.0"]
    assert find("endpoint", "created")["who"] == "(operator)"
    assert find("membership", "added as editor")["object"] == "Member pm@example.com"
    assert find("membership", "role is now admin")["changes"] == ["role: editor → admin"]
    assert find("membership", "removed")["who"] == "owner@example.com"
    assert find("api_key", "revoked")["who"] == "owner@example.com"
    assert find("api_key", "created")["object"].startswith("API key support bot (pl_")
    assert find("webhook", "created")["object"] == "Webhook Slack"
    assert find("project", "changed")["changes"] == ["require approval: no → yes"]
    assert find("approval", "proposed production → version 1")["reason"] == "Back to basics"
    assert find("approval", "rejected production → version 1")["who"] == "owner@example.com"


def test_entries_are_newest_first_and_secrets_never_show(history, client):
    project, owner, _ = history
    client.force_login(owner)
    response = audit(client, project)
    page = BeautifulSoup(response.content, "html.parser")

    times = [node["datetime"] for node in page.select("#audit-entries time")]
    assert times == sorted(times, reverse=True)
    assert "whsec_" not in response.content.decode() and "secret_hash" not in response.content.decode()


def test_filters_by_kind_object_user_and_date(history, client):
    project, owner, editor = history
    client.force_login(owner)

    assert {entry["kind"] for entry in rows(audit(client, project, "?type=prompt"))} == {"prompt"}
    assert len(rows(audit(client, project, "?type=approval"))) == 2
    assert {entry["who"] for entry in rows(audit(client, project, f"?user={editor.pk}"))} == {"pm@example.com"}
    assert {entry["who"] for entry in rows(audit(client, project, "?user=operator"))} == {"(operator)"}
    named = rows(audit(client, project, "?object=pol"))
    assert named and {entry["kind"] for entry in named} == {"evaluator"}
    assert rows(audit(client, project, "?type=membership&object=pm@")) != []
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert rows(audit(client, project, f"?since={tomorrow}")) == []
    assert len(rows(audit(client, project, f"?until={timezone.localdate().isoformat()}"))) == len(rows(audit(client, project)))

    fragment = audit(client, project, "?type=label", HTTP_HX_TARGET="audit-log", **HTMX)
    assert fragment.content.decode().lstrip().startswith("<section id=\"audit-log\"")
    bad = audit(client, project, "?since=yesterday&type=nonsense")
    assert bad.status_code == 400 and BeautifulSoup(bad.content, "html.parser").select_one("#audit-filter-errors") is not None


def test_another_projects_changes_stay_out(history, client):
    project, owner, _ = history
    other = ProjectFactory()
    account_services.project_rename(project=other, name="Secret plans", actor=None)
    client.force_login(owner)

    assert "Secret plans" not in audit(client, project).content.decode()
    client.force_login(MembershipFactory(role=Role.OWNER).user)
    assert audit(client, project).status_code == 404


def test_viewers_read_the_log(history, client):
    project, owner, _ = history
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    client.force_login(owner)
    owners_view = rows(audit(client, project))
    client.force_login(viewer)

    entries = rows(audit(client, project))

    assert entries == owners_view
    made = {(entry["kind"], entry["who"], entry["action"]) for entry in entries}
    assert {
        ("prompt", "pm@example.com", "saved version 2"), ("label", "owner@example.com", "moved production to version 2"),
        ("dataset", "pm@example.com", "created"), ("evaluator", "pm@example.com", "changed"), ("endpoint", "root@example.com", "changed"),
        ("membership", "owner@example.com", "removed"), ("api_key", "owner@example.com", "revoked"), ("webhook", "owner@example.com", "created"),
        ("project", "owner@example.com", "changed"),
    } <= made  # fmt: skip
    assert {entry["kind"] for entry in entries} == set(KINDS)


def test_the_csv_export_has_every_matching_entry(history, client):
    project, owner, _ = history
    account_services.project_rename(project=project, name="=HYPERLINK(\"http://evil\")", actor=owner)
    client.force_login(owner)

    response = client.get(f"/projects/{project.slug}/audit/export.csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert response["Content-Type"].startswith("text/csv") and f'{project.slug}-audit.csv' in response["Content-Disposition"]
    assert table[0] == ["time", "user", "type", "object", "action", "changes", "reason"]
    page_total = int(BeautifulSoup(audit(client, project).content, "html.parser").select_one("#audit-count").get_text())
    assert len(table) - 1 == page_total
    renamed = next(row for row in table if row[4] == "changed" and row[2] == "Project" and "name" in row[5])
    assert renamed[3].startswith("'=HYPERLINK")  # a spreadsheet shows it as text, never runs it
    labels = list(csv.reader(io.StringIO(b"".join(client.get(f"/projects/{project.slug}/audit/export.csv?type=label").streaming_content).decode())))
    assert [row[2] for row in labels[1:]] == ["Label"]


def test_pages_read_a_constant_number_of_queries(client, django_assert_num_queries):
    """Each round changes one object of every kind, so a page of 50 shows every kind whether
    the log holds 5 rounds or 25."""
    owner = MembershipFactory(role=Role.OWNER).user
    project = owner.memberships.get().project
    endpoint, _ = llm_services.endpoint_save(name="demo", actor=None, display_name="Demo", model="promptlab-demo/echo")
    prompt = prompts.prompt_create(project=project, actor=owner, name="faq", message="v1", template="Q: {{ q }}", endpoint=endpoint)
    dataset = datasets.dataset_create(project=project, actor=owner, name="cases")
    check = evaluations.evaluator_create(project=project, actor=owner, name="polite", kind="contains", config={"value": "please"})
    hook, _ = webhooks.webhook_create(project=project, actor=owner, name="Slack", url="http://127.0.0.1:9/hook", events=["label.moved"])
    proposer = MembershipFactory(project=project, role=Role.EDITOR).user
    client.force_login(owner)
    done = 0

    def read(rounds: int, page: str = "") -> None:
        nonlocal prompt, done
        for number in range(done, rounds):
            prompt = prompts.prompt_update(prompt=prompt, actor=owner, message=f"edit {number}", template=f"Q{number}: {{{{ q }}}}")
            prompts.label_move(prompt=prompt, actor=owner, label="staging", version=prompt.version)
            datasets.dataset_import(dataset=dataset, actor=owner, file=io.BytesIO(b"q\none\n"), format="csv")
            evaluations.evaluator_update(evaluator=check, actor=owner, message="weight", weight=number + 2)
            account_services.membership_set(project=project, user=UserFactory(), role=Role.VIEWER, actor=owner)
            api_keys.api_key_create(project=project, actor=owner, name=f"bot {number}", scopes=["read"])
            webhooks.webhook_update(webhook=hook, actor=owner, name=f"Slack {number}")
            approvals.approval_reject(approval=approvals.approval_propose(prompt=prompt, actor=proposer, version=1), actor=owner, comment="no")
            account_services.project_rename(project=project, name=f"Shop {number}", actor=owner)
            llm_services.endpoint_save(name="demo", actor=None, timeout_seconds=number + 10)
        done = max(done, rounds)
        with django_assert_num_queries(26):  # the page's rows, then per kind of entry its records and those before them
            response = audit(client, project, page)
        assert response.status_code == 200
        assert len(BeautifulSoup(response.content, "html.parser").select("#audit-entries tr.entry")) == 50

    read(5)
    read(25)
    read(25, "?page=2")
    read(30, "?page=2")
