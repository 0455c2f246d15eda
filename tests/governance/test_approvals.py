"""Approvals: an editor proposes moving production, a different admin or owner approves (the
label moves with the approver as its mover, the gate still applying) or rejects with a
comment; nobody decides on their own proposal; people are notified; an owner may require
approval for every production move (then only a rollback, gated, or an owner's written override
skips it). And the pages: approvals, the prompt page's propose form, notifications and the top
bar's badge."""

import pytest
from bs4 import BeautifulSoup

from evaluations import gates
from evaluations import services as evaluations
from evaluations.governance import approvals, audit
from evaluations.governance.models import ApprovalRequest, Notification
from evaluations.models import GateDecision
from experiments import services as experiments
from experiments.models import DatasetItem
from promptlab.accounts import services as account_services
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from prompts import services as prompts
from prompts.models import Label, LabelMove
from tests.factories import ApprovalRequestFactory, DatasetFactory, MembershipFactory, ModelEndpointFactory, PromptFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


class Team:
    def __init__(self):
        self.owner = MembershipFactory(role=Role.OWNER, user__email="owner@example.com").user
        self.project = self.owner.memberships.get().project
        self.admin = MembershipFactory(project=self.project, role=Role.ADMIN, user__email="admin@example.com").user
        self.editor = MembershipFactory(project=self.project, role=Role.EDITOR, user__email="pm@example.com").user
        self.viewer = MembershipFactory(project=self.project, role=Role.VIEWER, user__email="reader@example.com").user
        endpoint = ModelEndpointFactory(model="promptlab-demo/echo")
        self.prompt = prompts.prompt_create(project=self.project, actor=self.editor, name="faq", message="v1", template="Answer: {{ q }}",
                                            endpoint=endpoint)  # fmt: skip
        prompts.label_move(prompt=self.prompt, actor=self.owner, label="production", version=1)
        self.prompt = prompts.prompt_update(prompt=self.prompt, actor=self.editor, message="v2", template="Reply: {{ q }}")


@pytest.fixture
def team():
    return Team()


def production(prompt) -> int:
    return Label.objects.get(prompt=prompt, name="production").version


def inbox(user) -> list[str]:
    return list(Notification.objects.filter(user=user).values_list("text", flat=True))


def test_an_editor_proposes_and_the_admins_and_owners_are_told(team):
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2, message="Shorter answers")

    assert (approval.status, approval.version, approval.from_version, approval.proposed_by) == ("pending", 2, 1, team.editor)
    assert approval.gate_passed is None  # the prompt has no gate
    assert inbox(team.owner) == inbox(team.admin) == ["pm@example.com proposes moving faq production to version 2."]
    assert inbox(team.editor) == inbox(team.viewer) == []
    assert list(approvals.approvals_pending(project=team.project)) == [approval]
    assert production(team.prompt) == 1


def test_approval_moves_production_with_the_approver_as_the_mover(team):
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)

    approved = approvals.approval_approve(approval=approval, actor=team.admin, comment="Reads better")

    assert production(team.prompt) == 2
    move = LabelMove.objects.filter(label="production").first()
    assert move.actor == team.admin and (move.from_version, move.to_version) == (1, 2)
    assert move.message == f"Approved proposal #{approval.pk} by pm@example.com: Reads better"
    assert (approved.status, approved.decided_by, approved.comment, approved.label_move) == ("approved", team.admin, "Reads better", move)
    assert inbox(team.editor) == ["admin@example.com approved moving faq production to version 2: Reads better"]
    assert not Notification.objects.filter(user__in=[team.owner, team.admin], read_at__isnull=True).exists()  # nothing left to decide
    assert list(approvals.approvals_pending(project=team.project)) == []
    assert list(approvals.approvals_decided(project=team.project)) == [approved]

    with pytest.raises(Invalid, match="already approved"):
        approvals.approval_reject(approval=approval, actor=team.owner, comment="Too late")


def test_nobody_decides_on_their_own_proposal(team):
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.admin, version=2)

    with pytest.raises(Forbidden, match="You proposed this move"):
        approvals.approval_approve(approval=approval, actor=team.admin)
    with pytest.raises(Forbidden, match="You proposed this move"):
        approvals.approval_reject(approval=approval, actor=team.admin, comment="Never mind")
    with pytest.raises(Forbidden, match="needs the admin role"):
        approvals.approval_approve(approval=approval, actor=team.editor)
    assert production(team.prompt) == 1

    approvals.approval_approve(approval=approval, actor=team.owner)
    assert production(team.prompt) == 2


def test_a_rejection_says_why_and_leaves_production(team):
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)

    with pytest.raises(Invalid, match="a comment is required"):
        approvals.approval_reject(approval=approval, actor=team.owner, comment="  ")
    rejected = approvals.approval_reject(approval=approval, actor=team.owner, comment="The tone is off")

    assert rejected.status == "rejected" and production(team.prompt) == 1 and rejected.label_move is None
    assert inbox(team.editor) == ["owner@example.com rejected moving faq production to version 2: The tone is off"]


def test_the_proposer_withdraws_and_proposals_are_not_duplicated(team):
    with pytest.raises(Invalid, match="already in production"):
        approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=1)
    with pytest.raises(Forbidden):
        approvals.approval_propose(prompt=team.prompt, actor=team.viewer, version=2)
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)
    with pytest.raises(Invalid, match="already proposed"):
        approvals.approval_propose(prompt=team.prompt, actor=team.admin, version=2)

    with pytest.raises(Forbidden, match="Only the person who proposed it"):
        approvals.approval_withdraw(approval=approval, actor=team.admin)
    assert approvals.approval_withdraw(approval=approval, actor=team.editor).status == "withdrawn"
    approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)  # may be proposed again


def test_the_gate_is_attached_and_still_applies_when_approving(team):
    dataset = DatasetFactory(project=team.project)
    DatasetItem.objects.create(dataset=dataset, row=1, vars={"q": "hi"})
    check = evaluations.evaluator_create(project=team.project, actor=team.owner, name="says", kind="contains", config={"value": "x"})
    gates.gate_set(prompt=team.prompt, actor=team.owner, dataset=dataset, evaluators=[check])

    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)
    assert approval.gate_passed is False and approval.gate_reason == "no gate experiment has been run on version 2"

    with pytest.raises(Invalid, match="Version 2 cannot go to production: no gate experiment"):
        approvals.approval_approve(approval=approval, actor=team.admin)
    assert ApprovalRequest.objects.get().status == "pending" and production(team.prompt) == 1

    approvals.approval_approve(approval=approval, actor=team.admin, comment="Ship", override_reason="Legal asked for it")

    assert production(team.prompt) == 2
    decision = GateDecision.objects.get()
    assert decision.actor == team.admin and decision.override_reason == "Legal asked for it"
    assert ApprovalRequest.objects.get().override_reason == "Legal asked for it"


def test_when_a_project_requires_approval_nobody_moves_production_directly(team):
    with pytest.raises(Forbidden, match="needs the owner role"):
        account_services.project_require_approval_set(project=team.project, actor=team.admin, required=True)
    account_services.project_require_approval_set(project=team.project, actor=team.owner, required=True)

    for person in (team.admin, team.owner):
        with pytest.raises(Forbidden, match="requires an approval: propose version 2 of faq"):
            prompts.label_move(prompt=team.prompt, actor=person, label="production", version=2)
    prompts.label_move(prompt=team.prompt, actor=team.editor, label="staging", version=2)  # other labels are not governed

    with pytest.raises(Forbidden, match="requires an approval: propose version 2 of faq at http://.*/approvals/"):
        prompts.label_move(prompt=team.prompt, actor=None, label="production", version=2)  # the operator's CLI too
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.admin, version=2)
    approvals.approval_approve(approval=approval, actor=team.owner)
    assert production(team.prompt) == 2

    prompts.label_rollback(prompt=team.prompt, actor=team.admin, label="production")  # a rollback stays one click
    assert production(team.prompt) == 1
    with pytest.raises(Invalid, match="undid the one before it: rolling back would re-ship version 2"):
        prompts.label_rollback(prompt=team.prompt, actor=team.admin, label="production")
    with pytest.raises(Forbidden, match="requires an approval"):
        prompts.label_move(prompt=team.prompt, actor=team.admin, label="production", version=2)
    assert production(team.prompt) == 1
    assert team.project.history.first().history_change_reason == "Production moves need an approval"


def test_an_owner_overrides_a_required_approval_with_a_reason_and_the_others_are_told(team):
    account_services.project_require_approval_set(project=team.project, actor=team.owner, required=True)
    other_owner = MembershipFactory(project=team.project, role=Role.OWNER, user__email="cto@example.com").user

    with pytest.raises(Forbidden, match="Only an owner, signed in"):
        prompts.label_move(prompt=team.prompt, actor=team.admin, label="production", version=2, override_reason="Outage")
    with pytest.raises(Forbidden, match="Only an owner, signed in"):
        prompts.label_move(prompt=team.prompt, actor=None, label="production", version=2, override_reason="Outage")
    with pytest.raises(Forbidden, match="requires an approval"):
        prompts.label_move(prompt=team.prompt, actor=team.owner, label="production", version=2, override_reason="   ")
    assert production(team.prompt) == 1 and not Notification.objects.exists()

    prompts.label_move(prompt=team.prompt, actor=team.owner, label="production", version=2, override_reason="v1 leaks order ids")

    assert production(team.prompt) == 2
    move = LabelMove.objects.filter(label="production").first()
    assert move.actor == team.owner and move.message == "Approval overridden by the owner owner@example.com: v1 leaks order ids"
    told = "owner@example.com moved faq production to version 2 without an approval (owner's override): v1 leaks order ids"
    assert inbox(team.admin) == inbox(other_owner) == [told]
    assert inbox(team.owner) == inbox(team.editor) == []
    [entry] = [e for e in audit.audit_entries(audit.audit_rows(project=team.project), project=team.project) if e.kind == "label"
               and e.changes[0].new == "v2"]  # fmt: skip
    assert entry.user == team.owner and entry.reason == move.message


def test_a_rollback_returns_only_to_a_version_that_still_passes_its_gate(team):
    account_services.project_require_approval_set(project=team.project, actor=team.owner, required=True)
    dataset = DatasetFactory(project=team.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 4)])
    says = evaluations.evaluator_create(project=team.project, actor=team.owner, name="says", kind="contains", config={"value": "question"})
    gates.gate_set(prompt=team.prompt, actor=team.owner, dataset=dataset, evaluators=[says])
    run_gate(team, 2)
    approvals.approval_approve(approval=approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2), actor=team.admin)
    assert production(team.prompt) == 2

    with pytest.raises(Invalid, match="cannot roll back to version 1: it no longer passes its gate \\(no gate experiment"):
        prompts.label_rollback(prompt=team.prompt, actor=team.admin, label="production")
    assert production(team.prompt) == 2

    run_gate(team, 1)  # against production, v2: the echoes of both pass
    prompts.label_rollback(prompt=team.prompt, actor=team.admin, label="production")

    assert production(team.prompt) == 1
    assert LabelMove.objects.first().message.startswith("Roll back from version 2 Gate passed: pass rate 100.0%")
    assert list(GateDecision.objects.order_by("id").values_list("version", "passed")) == [(2, True), (1, True)]


def run_gate(team, version: int) -> None:
    """Start the gate experiment on the version, make its calls here (the offline demo model echoes the prompt) and score them."""
    experiment = gates.gate_experiment_start(prompt=team.prompt, version=version, actor=team.owner)
    experiments.experiment_drain(experiment_id=experiment.pk)
    for run_id in experiment.runs.values_list("pk", flat=True):
        evaluations.score_run(run_id=run_id)


# --- Pages -----------------------------------------------------------------------------------


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def test_the_prompt_page_proposes_and_the_approvals_page_lists_it(team, client):
    client.force_login(team.editor)
    page = soup(client.get(f"/projects/{team.project.slug}/prompts/faq/"))
    form = page.select_one("form#propose-production")
    assert [option["value"] for option in form.select("select[name=version] option")] == ["2", "1"]

    response = client.post(form["action"], {"prompt": "faq", "version": "2", "message": "Shorter"}, follow=True)

    assert response.redirect_chain[-1][0] == f"/projects/{team.project.slug}/approvals/"
    listed = soup(response).select_one("#approval-list article.pending")
    assert "v1" in listed.select_one("header").get_text() and listed.select_one(".version").get_text() == "v2"
    assert listed.select_one("button[value=withdraw]") is not None and listed.select_one("button[value=approve]") is None

    refused = client.post(form["action"], {"prompt": "faq", "version": "2"}, follow=True)  # proposed already
    assert refused.redirect_chain[-1][0] == f"/projects/{team.project.slug}/prompts/faq/"
    assert "already proposed" in soup(refused).select_one(".messages").get_text()

    client.force_login(team.viewer)
    assert soup(client.get(f"/projects/{team.project.slug}/prompts/faq/")).select_one("form#propose-production") is None


def test_an_admin_approves_on_the_page_and_gets_the_fragment(team, client):
    approval = approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)
    client.force_login(team.admin)
    url = f"/projects/{team.project.slug}/approvals/{approval.pk}/decide/"

    refused = client.post(url, {"decision": "reject", "comment": ""}, HTTP_HX_TARGET="approval-list", **HTMX)
    assert refused.status_code == 400 and "a comment is required" in soup(refused).select_one("#approval-error").get_text()

    response = client.post(url, {"decision": "approve", "comment": "Go"}, HTTP_HX_TARGET="approval-list", **HTMX)

    assert response.status_code == 200 and "approvalDecided" in response["HX-Trigger"]
    fragment = soup(response)
    assert fragment.select_one("section#approval-list") is not None and fragment.select_one("html") is None
    assert fragment.select_one(f"#decided-approvals tr#approval-{approval.pk} .status").get_text() == "approved"
    assert production(team.prompt) == 2

    client.force_login(team.viewer)
    assert client.post(url, {"decision": "approve"}).status_code == 302  # refused, with a message, nothing changed
    assert ApprovalRequest.objects.get().decided_by == team.admin


def test_outsiders_see_no_approvals(team, client):
    client.force_login(MembershipFactory(role=Role.OWNER).user)
    assert client.get(f"/projects/{team.project.slug}/approvals/").status_code == 404


def test_the_approvals_page_reads_a_constant_number_of_queries(team, client, django_assert_num_queries):
    client.force_login(team.owner)

    for extra in (2, 20):
        for _ in range(extra):
            prompt = PromptFactory(project=team.project)
            ApprovalRequestFactory(prompt=prompt, proposed_by=team.editor)
            ApprovalRequestFactory(prompt=prompt, proposed_by=team.editor, status="rejected", decided_by=team.admin)
        with django_assert_num_queries(7):
            assert client.get(f"/projects/{team.project.slug}/approvals/").status_code == 200


def test_notifications_show_in_the_badge_and_the_list_until_read(team, client):
    approvals.approval_propose(prompt=team.prompt, actor=team.editor, version=2)
    client.force_login(team.admin)

    page = soup(client.get("/"))
    badge = page.select_one("#notification-badge")
    assert badge["hx-get"] == "/notifications/" and badge["hx-trigger"] == "load"
    loaded = soup(client.get("/notifications/", HTTP_HX_TARGET="notification-badge", **HTMX))
    assert loaded.select_one("#notification-badge a .count").get_text() == "1"

    listing = soup(client.get("/notifications/"))
    [item] = listing.select("li.notification.unread")
    assert "pm@example.com proposes moving faq production to version 2." in item.get_text()
    assert item.select_one("a")["href"] == f"/projects/{team.project.slug}/approvals/"

    read = client.post("/notifications/read/", HTTP_HX_TARGET="notification-list", **HTMX)
    assert read["HX-Trigger"] == "notificationsRead" and soup(read).select("li.notification.unread") == []
    assert soup(client.get("/notifications/", HTTP_HX_TARGET="notification-badge", **HTMX)).select_one(".count") is None


def test_the_notifications_page_reads_a_constant_number_of_queries(team, client, django_assert_num_queries):
    client.force_login(team.admin)

    for extra in (2, 20):
        for _ in range(extra):
            approvals.approval_propose(prompt=PromptFactory(project=team.project), actor=team.editor, version=1)
        with django_assert_num_queries(6):
            assert client.get("/notifications/").status_code == 200


def test_the_api_refuses_a_direct_production_move_when_approval_is_required(team):
    from rest_framework.test import APIClient

    from promptlab.accounts import api_keys

    account_services.project_require_approval_set(project=team.project, actor=team.owner, required=True)
    _, secret = api_keys.api_key_create(project=team.project, actor=team.admin, name="deploy bot", scopes=["write"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = api.post("/api/v1/prompts/faq/labels/", {"label": "production", "version": 2}, format="json")

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert "requires an approval" in response.json()["error"]["message"]
    assert production(team.prompt) == 1


def test_only_owners_see_and_use_the_require_approval_switch(team, client):
    url = f"/projects/{team.project.slug}/approvals/"
    client.force_login(team.admin)
    assert soup(client.get(url)).select_one("#toggle-approval") is None
    refused = client.post(f"{url}policy/", {"required": "on"}, follow=True)
    assert "needs the owner role" in soup(refused).select_one(".messages").get_text()

    client.force_login(team.owner)
    assert soup(client.get(url)).select_one("#toggle-approval").get_text() == "Require approval for production moves"
    page = soup(client.post(f"{url}policy/", {"required": "on"}, follow=True))

    assert page.select_one("#approval-required") is not None and page.select_one("#toggle-approval").get_text() == "Stop requiring approval"
    team.project.refresh_from_db()
    assert team.project.require_approval
    client.post(f"{url}policy/", {})
    team.project.refresh_from_db()
    assert not team.project.require_approval
