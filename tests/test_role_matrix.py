"""Role x action: every mutating service, called by a viewer, an editor, an admin, an owner and
a member of another project, is allowed or refused with Forbidden exactly as promptlab.accounts.access
says.

An allowed call must change a row of some table (history tables included) or enqueue work
after commit; a refused one must leave every row as it was and enqueue nothing. Both are
measured around the service call alone, not the setup a case makes before it.

The services are found by introspection: every public function of the service modules that
takes an `actor`, or that writes in a transaction of its own (`@transaction.atomic`), must have
a case here or an exemption that says why. A new service without one fails
test_every_service_has_an_entry; so does a module elsewhere that grows a function taking an
`actor` without being listed."""

import ast
import importlib
import inspect
import io
import uuid
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from evaluations import gates
from evaluations import services as evaluation_services
from evaluations.governance import approvals, audit, notifications, webhooks
from evaluations.governance.models import Notification, WebhookDelivery
from evaluations.models import HumanRating
from evaluations.promptfoo.files import ConfigOnly
from evaluations.promptfoo.importer import promptfoo_suite_import
from experiments import datasets, playground
from experiments import services as experiment_services
from experiments.models import PlaygroundCall, RunStatus
from promptlab.accounts import api_keys
from promptlab.accounts import services as account_services
from promptlab.accounts.access import RANK
from promptlab.accounts.models import Role
from promptlab.errors import DomainError, Forbidden
from promptlab.llm import services as llm_services
from promptlab.llm.models import ModelEndpoint
from prompts import selectors as prompt_selectors
from prompts import services as prompt_services
from prompts.models import Label, LabelMove, PromptCall
from prompts.yaml_io import prompts_import
from tests.factories import (
    ApprovalRequestFactory,
    DatasetFactory,
    DatasetItemFactory,
    ExperimentFactory,
    MembershipFactory,
    ModelEndpointFactory,  # fmt: skip
    ProjectFactory,
    RunFactory,
    UserFactory,
    WebhookFactory,
)

pytestmark = pytest.mark.django_db

MODULES = [account_services, llm_services, prompt_services, api_keys, experiment_services, datasets, playground, evaluation_services, gates, approvals, webhooks,
           notifications]  # fmt: skip
SUPERUSER = "superuser"  # no project role suffices
WHO = ["outsider", *Role.values]

# Public functions elsewhere that take an actor: each delegates every write to the services below.
COMPOSITES = {
    "prompts.yaml_io.prompts_import": "saves through prompt_create / prompt_update / label_move",
    "evaluations.promptfoo.importer.promptfoo_suite_import": "saves through the prompt, dataset, evaluator and experiment services",
    "experiments.extensions.attach_all": "runs inside experiment_create; each attachment writes through its service (experiment_evaluators_set)",
}

EXEMPT = {
    "promptlab.accounts.services.user_invite": "creates only an account; access is granted by membership_set, which callers run in the same transaction",
    "promptlab.accounts.services.project_create": "not in a project yet: only superusers (and the operator's CLI) create one, and become its owner",
    "evaluations.gates.check_promotion": "a prompts.checks label-move check: label_move has authorized the actor; an override needs admin (tested in test_gates)",
    "evaluations.governance.approvals.check_approval_required": "a prompts.checks label-move check: label_move has authorized the actor; "
    "an override of a required approval needs an owner signed in (tested below, path by path)",
    "evaluations.governance.notifications.notifications_mark_read": "acts only on the actor's own notifications, in no project",
}


class World:
    """A project with a member of each role, a prompt at v1..v3 with moved labels, a dataset,
    experiments, an evaluator, and whatever else a case needs, made on first use by the operator."""

    def __init__(self):
        self.project = ProjectFactory()
        self.members = {role: MembershipFactory(project=self.project, role=role).user for role in Role}
        self.outsider = MembershipFactory(role=Role.OWNER).user  # owns another project, nothing here
        self.endpoint = ModelEndpointFactory(model="promptlab-demo/echo")

    def actor(self, who: str):
        return self.outsider if who == "outsider" else self.members[Role(who)]

    @cached_property
    def prompt(self):
        prompt = prompt_services.prompt_create(project=self.project, actor=None, name="faq", message="v1", template="Q: {{ q }}",
                                               endpoint=self.endpoint)  # fmt: skip
        for version in (2, 3):
            prompt = prompt_services.prompt_update(prompt=prompt, actor=None, message=f"v{version}", template=f"Q{version}: {{{{ q }}}}")
        for label in ("staging", "production"):
            prompt_services.label_move(prompt=prompt, actor=None, label=label, version=1)
            prompt_services.label_move(prompt=prompt, actor=None, label=label, version=2)
        return prompt

    @cached_property
    def dataset(self):
        dataset = DatasetFactory(project=self.project)
        DatasetItemFactory(dataset=dataset, row=1, vars={"q": "one"})
        DatasetItemFactory(dataset=dataset, row=2, vars={"q": "two"})
        return dataset

    @cached_property
    def draft(self):
        return experiment_services.experiment_create(project=self.project, actor=None, name="draft", dataset=self.dataset,
                                                     variants=[{"prompt": self.prompt, "version": 1}])  # fmt: skip

    @cached_property
    def running(self):
        return experiment_services.experiment_start(experiment=self.draft, actor=None)

    @cached_property
    def cancelled(self):
        return experiment_services.experiment_cancel(experiment=self.running, actor=None)

    @cached_property
    def failed(self):  # started, and its runs failed
        self.running.runs.update(status=RunStatus.FAILED)
        return self.running

    @cached_property
    def done_run(self):
        return RunFactory(experiment=ExperimentFactory(project=self.project, status="finished"))

    @cached_property
    def evaluator(self):
        return evaluation_services.evaluator_create(project=self.project, actor=None, name="says", kind="contains", config={"value": "Q"})

    @cached_property
    def proposal(self):  # by an editor who is none of the actors
        proposer = MembershipFactory(project=self.project, role=Role.EDITOR).user
        return ApprovalRequestFactory(prompt=self.prompt, version=3, proposed_by=proposer)

    @cached_property
    def webhook(self):
        return WebhookFactory(project=self.project)


def _gate_experiment_start(w, actor):
    gates.gate_set(prompt=w.prompt, actor=None, dataset=w.dataset, evaluators=[w.evaluator])
    gates.gate_experiment_start(prompt=w.prompt, version=3, actor=actor)


def _rating_delete_own(w, actor):
    HumanRating.objects.create(run=w.done_run, user=actor, scale="thumbs", value=1)
    evaluation_services.rating_delete(run=w.done_run, actor=actor)


def _rating_delete_other(w, actor):
    other = UserFactory()
    HumanRating.objects.create(run=w.done_run, user=other, scale="thumbs", value=1)
    evaluation_services.rating_delete(run=w.done_run, actor=actor, user=other)


def _playground_call(w):
    return PlaygroundCall.objects.create(batch=uuid.uuid4(), project=w.project, prompt=w.prompt, version=1, endpoint=w.endpoint,
                                         vars={"q": "hi"}, status="done", output="hello")  # fmt: skip


def _prompt_call(w):
    return PromptCall.objects.create(project=w.project, prompt=w.prompt, prompt_name=w.prompt.name, version=2, model="m", status="done")


def _failed_delivery(w):
    return WebhookDelivery.objects.create(webhook=w.webhook, event="label.moved", event_id=uuid.uuid4(), payload={}, status="failed")


AC, L = "promptlab.accounts.services", "promptlab.llm.services"
P, K, E, D, G = "prompts.services", "promptlab.accounts.api_keys", "experiments.services", "experiments.datasets", "evaluations.gates"
V, A, W = "evaluations.services", "evaluations.governance.approvals", "evaluations.governance.webhooks"

# "module.function" or "module.function[variant]": (the least role allowed, the call).
CASES = {
    f"{AC}.membership_set[editor]": (Role.ADMIN, lambda w, a: account_services.membership_set(project=w.project, user=UserFactory(), role="editor", actor=a)),
    f"{AC}.membership_set[owner]": (Role.OWNER, lambda w, a: account_services.membership_set(project=w.project, user=UserFactory(), role="owner", actor=a)),
    f"{AC}.membership_remove[editor]": (Role.ADMIN, lambda w, a: account_services.membership_remove(
        project=w.project, user=MembershipFactory(project=w.project, role=Role.EDITOR).user, actor=a)),
    f"{AC}.membership_remove[owner]": (Role.OWNER, lambda w, a: account_services.membership_remove(
        project=w.project, user=MembershipFactory(project=w.project, role=Role.OWNER).user, actor=a)),
    f"{AC}.project_rename": (Role.ADMIN, lambda w, a: account_services.project_rename(project=w.project, name="Renamed", actor=a)),
    f"{AC}.project_require_approval_set": (Role.OWNER, lambda w, a: account_services.project_require_approval_set(project=w.project, actor=a, required=True)),
    f"{AC}.project_delete": (Role.OWNER, lambda w, a: account_services.project_delete(project=w.project, actor=a)),
    f"{L}.endpoint_save": (SUPERUSER, lambda w, a: llm_services.endpoint_save(name="another", actor=a, model="openai/gpt-4o-mini")),
    f"{P}.prompt_create": (Role.EDITOR, lambda w, a: prompt_services.prompt_create(project=w.project, actor=a, name="new", message="m", template="x",
                                                                                    endpoint=w.endpoint)),
    f"{P}.prompt_update": (Role.EDITOR, lambda w, a: prompt_services.prompt_update(prompt=w.prompt, actor=a, message="m", template="changed")),
    f"{P}.prompt_revert": (Role.EDITOR, lambda w, a: prompt_services.prompt_revert(prompt=w.prompt, actor=a, version=1)),
    f"{P}.prompt_delete": (Role.ADMIN, lambda w, a: prompt_services.prompt_delete(prompt=w.prompt, actor=a)),
    f"{P}.label_move[staging]": (Role.EDITOR, lambda w, a: prompt_services.label_move(prompt=w.prompt, actor=a, label="staging", version=3)),
    f"{P}.label_move[production]": (Role.ADMIN, lambda w, a: prompt_services.label_move(prompt=w.prompt, actor=a, label="production", version=3)),
    f"{P}.label_rollback[staging]": (Role.EDITOR, lambda w, a: prompt_services.label_rollback(prompt=w.prompt, actor=a, label="staging")),
    f"{P}.label_rollback[production]": (Role.ADMIN, lambda w, a: prompt_services.label_rollback(prompt=w.prompt, actor=a, label="production")),
    f"{P}.prompt_call_create": (Role.EDITOR, lambda w, a: prompt_services.prompt_call_create(prompt=w.prompt, actor=a, variables={"q": "hi"})),
    f"{P}.prompt_call_feedback": (Role.VIEWER, lambda w, a: prompt_services.prompt_call_feedback(call=_prompt_call(w), actor=a, thumbs=1)),
    f"{K}.api_key_create": (Role.ADMIN, lambda w, a: api_keys.api_key_create(project=w.project, actor=a, name="bot", scopes=["read"])),
    f"{K}.api_key_revoke": (Role.ADMIN, lambda w, a: api_keys.api_key_revoke(
        key=api_keys.api_key_create(project=w.project, actor=None, name="bot", scopes=["read"])[0], actor=a)),
    f"{D}.dataset_create": (Role.EDITOR, lambda w, a: datasets.dataset_create(project=w.project, actor=a, name="cases")),
    f"{D}.dataset_import": (Role.EDITOR, lambda w, a: datasets.dataset_import(dataset=w.dataset, actor=a, file=io.BytesIO(b"q\nthree\n"), format="csv")),
    f"{D}.dataset_items_add": (Role.EDITOR, lambda w, a: datasets.dataset_items_add(dataset=w.dataset, actor=a, items=[{"q": "three"}])),
    f"{D}.dataset_item_update": (Role.EDITOR, lambda w, a: datasets.dataset_item_update(
        item=w.dataset.items.get(row=1), actor=a, assertions=[{"kind": "is_json"}], threshold=0.5)),
    f"{E}.experiment_create": (Role.EDITOR, lambda w, a: experiment_services.experiment_create(
        project=w.project, actor=a, name="x", dataset=w.dataset, variants=[{"prompt": w.prompt, "version": 2}])),
    f"{E}.experiment_update": (Role.EDITOR, lambda w, a: experiment_services.experiment_update(
        experiment=w.draft, actor=a, variants=[{"prompt": w.prompt, "version": 2}], name="renamed")),
    f"{E}.experiment_start": (Role.EDITOR, lambda w, a: experiment_services.experiment_start(experiment=w.draft, actor=a)),
    f"{E}.experiment_cancel": (Role.EDITOR, lambda w, a: experiment_services.experiment_cancel(experiment=w.running, actor=a)),
    f"{E}.experiment_resume": (Role.EDITOR, lambda w, a: experiment_services.experiment_resume(experiment=w.cancelled, actor=a)),
    f"{E}.experiment_retry_errors": (Role.EDITOR, lambda w, a: experiment_services.experiment_retry_errors(experiment=w.failed, actor=a)),
    f"{E}.experiment_budget_set": (Role.EDITOR, lambda w, a: experiment_services.experiment_budget_set(
        experiment=w.running, actor=a, budget_usd=Decimal("5"))),
    "experiments.playground.playground_run": (Role.EDITOR, lambda w, a: playground.playground_run(
        prompt=w.prompt, actor=a, version=None, variables={"q": "hi"}, endpoints=[w.endpoint])),
    "experiments.playground.playground_save_item": (Role.EDITOR, lambda w, a: playground.playground_save_item(
        call=_playground_call(w), actor=a, dataset=w.dataset)),
    f"{V}.evaluator_create": (Role.EDITOR, lambda w, a: evaluation_services.evaluator_create(
        project=w.project, actor=a, name="new", kind="contains", config={"value": "x"})),
    f"{V}.evaluator_update": (Role.EDITOR, lambda w, a: evaluation_services.evaluator_update(evaluator=w.evaluator, actor=a, message="m", weight=2.0)),
    f"{V}.evaluator_delete": (Role.ADMIN, lambda w, a: evaluation_services.evaluator_delete(evaluator=w.evaluator, actor=a)),
    f"{V}.experiment_evaluators_set": (Role.EDITOR, lambda w, a: evaluation_services.experiment_evaluators_set(
        experiment=w.draft, actor=a, evaluators=[w.evaluator])),
    f"{V}.experiment_rescore": (Role.EDITOR, lambda w, a: evaluation_services.experiment_rescore(experiment=w.done_run.experiment, actor=a)),
    f"{V}.rating_set": (Role.VIEWER, lambda w, a: evaluation_services.rating_set(run=w.done_run, actor=a, scale="thumbs", value=1)),
    f"{V}.rating_delete[own]": (Role.VIEWER, _rating_delete_own),
    f"{V}.rating_delete[someone else's]": (Role.ADMIN, _rating_delete_other),
    f"{G}.gate_set": (Role.ADMIN, lambda w, a: gates.gate_set(prompt=w.prompt, actor=a, dataset=w.dataset, evaluators=[w.evaluator])),
    f"{G}.gate_experiment_start": (Role.EDITOR, _gate_experiment_start),
    f"{A}.approval_propose": (Role.EDITOR, lambda w, a: approvals.approval_propose(prompt=w.prompt, actor=a, version=3)),
    f"{A}.approval_approve": (Role.ADMIN, lambda w, a: approvals.approval_approve(approval=w.proposal, actor=a, comment="ok")),
    f"{A}.approval_reject": (Role.ADMIN, lambda w, a: approvals.approval_reject(approval=w.proposal, actor=a, comment="not now")),
    f"{A}.approval_withdraw": (Role.EDITOR, lambda w, a: approvals.approval_withdraw(
        approval=ApprovalRequestFactory(prompt=w.prompt, version=3, proposed_by=a), actor=a)),
    f"{W}.webhook_create": (Role.ADMIN, lambda w, a: webhooks.webhook_create(
        project=w.project, actor=a, name="ci", url="http://127.0.0.1:9/hook", events=["label.moved"])),
    f"{W}.webhook_update": (Role.ADMIN, lambda w, a: webhooks.webhook_update(webhook=w.webhook, actor=a, enabled=False)),
    f"{W}.webhook_secret_rotate": (Role.ADMIN, lambda w, a: webhooks.webhook_secret_rotate(webhook=w.webhook, actor=a)),
    f"{W}.webhook_delete": (Role.ADMIN, lambda w, a: webhooks.webhook_delete(webhook=w.webhook, actor=a)),
    f"{W}.webhook_redeliver": (Role.ADMIN, lambda w, a: webhooks.webhook_redeliver(delivery=_failed_delivery(w), actor=a)),
}  # fmt: skip


def _service(name: str) -> str:
    return name.split("[", 1)[0]


def _takes_actor(function) -> bool:
    parameter = inspect.signature(function).parameters.get("actor")
    return parameter is not None and parameter.kind == inspect.Parameter.KEYWORD_ONLY


def _is_service(function) -> bool:
    """Takes an actor, or writes in a transaction of its own (transaction.atomic wraps it)."""
    return _takes_actor(function) or hasattr(function, "__wrapped__")


def _public_functions(module):
    for name, function in vars(module).items():
        if inspect.isfunction(function) and function.__module__ == module.__name__ and not name.startswith("_"):
            yield f"{module.__name__}.{name}", function


def test_every_service_has_an_entry():
    found = {name for module in MODULES for name, function in _public_functions(module) if _is_service(function)}
    covered = {_service(name) for name in CASES} | set(EXEMPT)

    assert sorted(found - covered) == [], "a mutating service without a role-matrix case: add one to CASES (or EXEMPT, saying why)"
    assert sorted(covered - found) == [], "an entry for a service that no longer exists"


def test_no_module_outside_the_matrix_takes_an_actor():
    """Read from the source (importing every module would import LiteLLM and more)."""
    root = Path(__file__).resolve().parent.parent
    listed = {module.__name__ for module in MODULES}
    elsewhere = set()
    for package in ("promptlab", "prompts", "experiments", "evaluations"):
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            if "migrations" in path.parts or "management" in path.parts or module in listed:
                continue
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and any(
                    argument.arg == "actor" for argument in node.args.kwonlyargs
                ):
                    elsewhere.add(f"{module}.{node.name}")

    assert sorted(elsewhere - set(COMPOSITES)) == [], "a module with services that the role matrix does not cover: add it to MODULES"


# The tables the services may write: the apps' own (history tables included) and the users'.
TABLES = [
    (model._meta.db_table, model._meta.pk.column) for model in apps.get_models()
    if model.__module__.split(".")[0] in ("promptlab", "prompts", "experiments", "evaluations") or model is get_user_model()
]  # fmt: skip


def _rows() -> dict[str, list[tuple]]:
    """Every row of those tables, read twice per case: in raw SQL, as the ORM takes some 40 times as long."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        rows = {}
        for table, pk in TABLES:
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(pk)}")
            rows[table] = cursor.fetchall()
    return rows


@pytest.fixture
def observe(monkeypatch, django_capture_on_commit_callbacks):
    """Wrap the case's service: each call the actor makes records (tables it changed, callbacks it
    left to run after commit, such as enqueued tasks)."""

    def observe(name: str, actor) -> list[tuple[list[str], list]]:
        module_name, function_name = _service(name).rsplit(".", 1)
        module = importlib.import_module(module_name)
        service = getattr(module, function_name)
        calls = []

        def observed(**kwargs):
            if kwargs.get("actor") is not actor:
                return service(**kwargs)
            before = _rows()
            try:
                with django_capture_on_commit_callbacks() as enqueued:
                    return service(**kwargs)
            finally:
                after = _rows()
                calls.append(([table for table in before if before[table] != after[table]], enqueued))

        monkeypatch.setattr(module, function_name, observed)
        return calls

    return observe


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("name", sorted(CASES))
def test_role_matrix(name, who, observe):
    minimum, call = CASES[name]
    world = World()
    actor = world.actor(who)
    allowed = who != "outsider" and minimum != SUPERUSER and RANK[Role(who)] >= RANK[minimum]
    calls = observe(name, actor)

    if allowed:
        call(world, actor)
    else:
        with pytest.raises(Forbidden):
            call(world, actor)

    [(changed, enqueued)] = calls  # the case called its service once, as the actor
    if allowed:
        assert changed or enqueued, "allowed, yet it changed no row and enqueued nothing"
    else:
        assert (changed, enqueued) == ([], []), "refused, yet it wrote or enqueued something"


def test_only_superusers_change_the_model_catalog():
    endpoint, created = llm_services.endpoint_save(name="another", actor=UserFactory(is_superuser=True), model="openai/gpt-4o-mini")

    assert created and ModelEndpoint.objects.get(name="another") == endpoint and endpoint.model == "openai/gpt-4o-mini"


# --- Production, in a project that requires approval, through every path that can move it ----------
#
# Without an approval every path is refused, saying so, and nothing moves. With one: approving a
# proposal (on the approvals page) moves production, and then each path naming that version is
# accepted (it moves nothing). An owner's override with a written reason works only for an owner
# signed in (API session, admin site); API keys (whoever made them), imports and the CLI name no
# person who answers for it. A rollback goes back one move, never re-shipping what it pulled.


def _api_key(w, made_by: str) -> str:
    if made_by == "the CLI":
        out = io.StringIO()
        call_command("create_api_key", w.project.slug, "--scopes", "write", stdout=out, stderr=io.StringIO())
        return out.getvalue().strip()
    return api_keys.api_key_create(project=w.project, actor=w.members[Role(made_by)], name="deploy", scopes=["write"])[1]


def _through_api(w, body: dict, *, key: str = "", user=None) -> str | None:
    """None when the API moved the label, else its error message."""
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    else:
        client.force_login(user)
    response = client.post(f"/api/v1/prompts/{w.prompt.name}/labels/", body, format="json")
    return None if response.status_code == 200 else response.json()["error"]["message"]


def _through_admin(w, user, action: str, data: dict) -> str | None:
    """None when the admin site's label or rollback form succeeded, else the error it shows."""
    client = Client()
    client.force_login(user)
    page = client.post(f"/admin/prompts/prompt/{w.prompt.pk}/{action}/", data, follow=True)
    [message] = BeautifulSoup(page.content, "html.parser").select("ul.messagelist li")
    return None if "success" in message["class"] else message.get_text()


def _yaml_folder(w, version: int) -> Path:
    """The prompt's file as at the version, listing production."""
    record = prompt_selectors.prompt_version(prompt=w.prompt, version=version)
    document = {"name": w.prompt.name, "kind": "text", "template": record.template, "model": w.endpoint.name, "labels": ["production"]}
    folder = w.tmp / f"v{version}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / f"{w.prompt.name}.yaml").write_text(yaml.safe_dump(document))
    return folder


def _through_import(w, version: int) -> str | None:
    try:
        prompts_import(project=w.project, actor=w.members[Role.OWNER], folder=_yaml_folder(w, version))
    except DomainError as exc:
        return exc.message
    return None


def _through_cli(w, version: int) -> str | None:
    try:
        call_command("import_prompts", str(_yaml_folder(w, version)), "--project", w.project.slug, stdout=io.StringIO())
    except CommandError as exc:
        return str(exc)
    return None


def _move(version: int, reason: str) -> dict:
    return {"label": "production", "version": version, "override_reason": reason}


# Each moves production to the version, with the override reason where the path can carry one.
PATHS = {
    "API key made by an admin": lambda w, v, r: _through_api(w, _move(v, r), key=_api_key(w, "admin")),
    "API key made by an owner": lambda w, v, r: _through_api(w, _move(v, r), key=_api_key(w, "owner")),
    "API key made by the CLI": lambda w, v, r: _through_api(w, _move(v, r), key=_api_key(w, "the CLI")),
    "API, an admin signed in": lambda w, v, r: _through_api(w, _move(v, r), user=w.members[Role.ADMIN]),
    "API, an owner signed in": lambda w, v, r: _through_api(w, _move(v, r), user=w.members[Role.OWNER]),
    "admin site, an admin": lambda w, v, r: _through_admin(w, w.members[Role.ADMIN], "label", _move(v, r)),
    "admin site, an owner": lambda w, v, r: _through_admin(w, w.members[Role.OWNER], "label", _move(v, r)),
    "YAML import by an owner": lambda w, v, r: _through_import(w, v),  # a file has no place for a reason
    "import_prompts (the CLI)": lambda w, v, r: _through_cli(w, v),
}  # fmt: skip
OVERRIDERS = {"API, an owner signed in", "admin site, an owner"}
ROLLBACKS = {
    "API key made by the CLI": lambda w: _through_api(w, {"label": "production", "rollback": True}, key=_api_key(w, "the CLI")),
    "API, an admin signed in": lambda w: _through_api(w, {"label": "production", "rollback": True}, user=w.members[Role.ADMIN]),
    "admin site, an admin": lambda w: _through_admin(w, w.members[Role.ADMIN], "rollback", {"label": "production"}),
}  # fmt: skip


@pytest.fixture
def governed(tmp_path):
    """The World with production at v2 (from v1), in a project that requires approval."""
    world = World()
    world.tmp = tmp_path
    world.prompt  # noqa: B018 (made now, before approval is required)
    account_services.project_require_approval_set(project=world.project, actor=world.members[Role.OWNER], required=True)
    return world


def _production(w) -> int:
    return Label.objects.get(prompt=w.prompt, name="production").version


def _production_moves(w) -> list[tuple]:
    return list(LabelMove.objects.filter(prompt=w.prompt, label="production").values_list("from_version", "to_version"))


@pytest.mark.parametrize("path", PATHS)
def test_no_path_moves_production_without_an_approval(governed, path):
    before = _production_moves(governed)

    error = PATHS[path](governed, 3, "")

    assert error and f"Production in project {governed.project.slug} requires an approval: propose version 3 of faq at" in error
    assert _production(governed) == 2 and _production_moves(governed) == before


@pytest.mark.parametrize("path", PATHS)
def test_every_path_accepts_the_version_an_approval_moved(governed, path):
    editor = MembershipFactory(project=governed.project, role=Role.EDITOR).user
    approval = approvals.approval_propose(prompt=governed.prompt, actor=editor, version=3, message="Shorter")
    client = Client()
    client.force_login(governed.members[Role.ADMIN])
    client.post(f"/projects/{governed.project.slug}/approvals/{approval.pk}/decide/", {"decision": "approve", "comment": "ok"})
    assert _production(governed) == 3
    moves = _production_moves(governed)

    assert PATHS[path](governed, 3, "") is None
    assert _production(governed) == 3 and _production_moves(governed) == moves


@pytest.mark.parametrize("path", PATHS)
def test_only_an_owner_signed_in_overrides_the_approval_and_it_is_audited(governed, path):
    owner, admin = governed.members[Role.OWNER], governed.members[Role.ADMIN]

    error = PATHS[path](governed, 3, "v2 leaks order ids")

    if path not in OVERRIDERS:
        assert error and ("Only an owner, signed in (not with an API key or the CLI)" in error or "requires an approval" in error)
        assert _production(governed) == 2 and not Notification.objects.exists()
        return
    assert error is None and _production(governed) == 3
    entries = audit.audit_entries(audit.audit_rows(project=governed.project, filters=audit.Filters(kind="label")), project=governed.project)
    assert (entries[0].user, entries[0].action) == (owner, "moved production to version 3")
    assert entries[0].reason == f"Approval overridden by the owner {owner.email}: v2 leaks order ids"
    told = f"{owner.email} moved faq production to version 3 without an approval (owner's override): v2 leaks order ids"
    assert list(Notification.objects.values_list("user", "text")) == [(admin.pk, told)]


@pytest.mark.parametrize("path", ROLLBACKS)
def test_a_rollback_goes_back_one_move_and_never_re_ships_what_it_pulled(governed, path):
    assert ROLLBACKS[path](governed) is None
    assert _production(governed) == 1

    error = ROLLBACKS[path](governed)

    assert error and "undid the one before it: rolling back would re-ship version 2, which was just pulled" in error
    assert _production(governed) == 1 and _production_moves(governed) == [(2, 1), (1, 2), (None, 1)]


def test_a_promptfoo_import_never_moves_a_label(governed):
    labels = list(Label.objects.values_list("prompt", "name", "version"))
    config = (b"description: faq\nprompts: ['Answer {{q}}']\ntests: [{vars: {q: hi}}]\n"
              b"providers: [{id: 'openai:gpt-4o-mini', config: {apiKeyEnvar: PROMPTLAB_KEY_OPENAI}}]\n")  # fmt: skip

    report = promptfoo_suite_import(project=governed.project, actor=None, files=ConfigOnly(config, name="promptfooconfig.yaml"))

    assert report.prompts and list(Label.objects.values_list("prompt", "name", "version")) == labels
