"""The state-only move of models between apps: projects, memberships and API keys from prompts
to accounts, the model catalog from prompts to llm, approvals, notifications and webhooks from
evaluations to governance. A database filled before the move reads the same after it, and the
content types keep their ids under the new labels, so permissions and admin log entries follow.

The test migrates the test database back to the schema before the move, fills it through the
historical models of that state, migrates forward and reads every row through today's models.
"""

import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps as current_apps
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.utils import timezone

from evaluations.governance.models import ApprovalRequest, Notification, Webhook, WebhookAttempt, WebhookDelivery
from evaluations.models import Evaluator
from experiments.models import Dataset, DatasetItem, Experiment, PlaygroundCall, Run, Variant
from promptlab.accounts.models import ApiKey, Membership, Project
from promptlab.llm.models import ModelEndpoint
from prompts.models import CallFeedback, Label, LabelMove, Prompt, PromptCall

# The old apps' last migrations before the move (the moved-out migrations come after them).
BEFORE_MOVE = [("prompts", "0006_governance_history"), ("experiments", "0004_dataset_history"), ("evaluations", "0003_governance")]  # fmt: skip
NEW_APPS = ["accounts", "llm", "governance"]
# new app label: (old app label, the models that moved), as the 0001 migrations of the new apps say.
MOVED = {
    "accounts": ("prompts", ["project", "historicalproject", "membership", "historicalmembership", "apikey", "historicalapikey"]),
    "llm": ("prompts", ["modelendpoint", "historicalmodelendpoint"]),
    "governance": ("evaluations", ["approvalrequest", "notification", "webhook", "historicalwebhook", "webhookdelivery", "webhookattempt"]),
}  # fmt: skip
NEW_LABEL = {(old, model): new for new, (old, models) in MOVED.items() for model in models}


def before_move_nodes(graph: MigrationGraph) -> list[tuple[str, str]]:
    """The schema before the move: the old apps at BEFORE_MOVE, the new apps not at all, every
    other app (Django's, allauth's, promptlab's) at its latest."""
    untouched = {app for app, _ in BEFORE_MOVE} | set(NEW_APPS)
    return [*BEFORE_MOVE, *sorted(leaf for leaf in graph.leaf_nodes() if leaf[0] not in untouched)]


def migrate_back():
    """Unapplies the move; returns the historical apps of the schema before it."""
    executor = MigrationExecutor(connection)
    executor.migrate([*BEFORE_MOVE, *((app, None) for app in NEW_APPS)])
    executor.loader.build_graph()  # re-read what is applied now
    graph = executor.loader.graph
    nodes = before_move_nodes(graph)
    # Exactly the ancestors of the pre-move nodes are applied, and nothing depends on what is not.
    assert set(executor.loader.applied_migrations) == {node for target in nodes for node in graph.forwards_plan(target)}
    executor.loader.check_consistent_history(connection)
    return executor.loader.project_state(nodes).apps


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)  # a fresh executor builds the graph from the database again
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.fixture
def latest_schema_after(transactional_db):
    """Whatever the test did or asserted, the database ends at the latest migrations before
    pytest-django flushes it, so the tests after this one see the ordinary schema."""
    ContentType.objects.clear_cache()
    try:
        yield
    finally:
        migrate_to_latest()


class Rows:
    """Rows made through historical models, with their columns as stored, to compare after the move."""

    def __init__(self, apps):
        self.apps = apps
        self.stored: list[tuple[tuple[str, str], object, dict]] = []  # ((app label, model name), pk, columns)

    def make(self, model_label: str, /, **fields):
        model = self.apps.get_model(model_label)
        row = model.objects.create(**fields)
        columns = [field.attname for field in model._meta.concrete_fields]
        key = (model._meta.app_label, model._meta.model_name)
        self.stored.append((key, row.pk, model.objects.filter(pk=row.pk).values(*columns).get()))
        return row

    def tables(self) -> set[tuple[str, str]]:
        return {key for key, _, _ in self.stored}


def tables_to_fill(apps) -> set[tuple[str, str]]:
    """The moved models and every model with a foreign key to one, in the historical apps."""

    def key(model):
        return model._meta.app_label, model._meta.model_name

    return {
        key(model)
        for model in apps.get_models(include_auto_created=True)
        if key(model) in NEW_LABEL
        or any(field.is_relation and key(field.related_model) in NEW_LABEL for field in model._meta.concrete_fields)
    }


def fill(apps, rows: Rows) -> SimpleNamespace:
    """One row in every moved table and every table pointing at one, plus the content types,
    permissions and an admin log entry as they were before the move."""
    now = timezone.now()
    made = SimpleNamespace()
    made.user = rows.make("auth.User", username="ada@example.com", email="ada@example.com", password="!")
    made.project = rows.make("prompts.Project", slug="support-bot", name="Support bot", require_approval=True)
    made.endpoint = rows.make(
        "prompts.ModelEndpoint", name="gpt-mini", display_name="GPT mini", model="openai/gpt-4o-mini",
        api_key_env="OPENAI_API_KEY", input_cost_per_token=Decimal("0.000000150000"),
        output_cost_per_token=Decimal("0.000000600000"), requests_per_minute=60, max_concurrency=4,
    )  # fmt: skip
    made.membership = rows.make("prompts.Membership", project=made.project, user=made.user, role="owner")
    made.api_key = rows.make(
        "prompts.ApiKey", project=made.project, name="support-bot production", prefix="pl_abc123",
        secret_hash="0" * 64, scopes=["read", "invoke"], created_by=made.user,
    )  # fmt: skip
    history = {"history_date": now, "history_type": "+", "history_user": made.user, "history_change_reason": "Created"}
    made.project_history = rows.make(
        "prompts.HistoricalProject", id=made.project.pk, slug="support-bot", name="Support bot", require_approval=True, **history
    )
    made.membership_history = rows.make(
        "prompts.HistoricalMembership", id=made.membership.pk, project=made.project, user=made.user, role="owner", **history
    )
    made.api_key_history = rows.make(
        "prompts.HistoricalApiKey", id=made.api_key.pk, project=made.project, name="support-bot production",
        prefix="pl_abc123", scopes=["read", "invoke"], created_by=made.user, **history,
    )  # fmt: skip
    made.endpoint_history = rows.make(
        "prompts.HistoricalModelEndpoint", id=made.endpoint.pk, name="gpt-mini", display_name="GPT mini",
        model="openai/gpt-4o-mini", api_key_env="OPENAI_API_KEY", **history,
    )  # fmt: skip

    prompt = {"name": "greeting", "kind": "text", "template": "Hello {{ name }}", "params": {"temperature": 0.2},
              "used_variables": ["name"], "version": 1}  # fmt: skip
    made.prompt = rows.make("prompts.Prompt", project=made.project, endpoint=made.endpoint, **prompt)
    made.prompt_history = rows.make(
        "prompts.HistoricalPrompt", id=made.prompt.pk, project=made.project, endpoint=made.endpoint, **prompt, **history
    )
    made.label = rows.make("prompts.Label", prompt=made.prompt, name="production", version=1)
    made.label_move = rows.make(
        "prompts.LabelMove", prompt=made.prompt, prompt_name="greeting", label="production", to_version=1, actor=made.user
    )
    made.call = rows.make(
        "prompts.PromptCall", project=made.project, prompt=made.prompt, prompt_name="greeting", version=1,
        label="production", endpoint=made.endpoint, model="openai/gpt-4o-mini", api_key=made.api_key, user=made.user,
        vars={"name": "Ada"}, status="done", output="Hello Ada", prompt_tokens=5, completion_tokens=2,
        cost_usd=Decimal("0.00000195"), finished_at=now,
    )  # fmt: skip
    made.feedback = rows.make("prompts.CallFeedback", call=made.call, thumbs=1, api_key=made.api_key)

    made.dataset = rows.make("experiments.Dataset", project=made.project, name="greetings")
    made.dataset_history = rows.make("experiments.HistoricalDataset", id=made.dataset.pk, project=made.project, name="greetings", **history)
    made.item = rows.make("experiments.DatasetItem", dataset=made.dataset, row=1, vars={"name": "Ada"}, expected="Hello Ada")
    made.experiment = rows.make(
        "experiments.Experiment", project=made.project, dataset=made.dataset, name="Greeting v1", created_by=made.user,
        budget_usd=Decimal("1.50000000"),
    )  # fmt: skip
    made.variant = rows.make(
        "experiments.Variant", experiment=made.experiment, name="A", prompt=made.prompt, version=1, endpoint=made.endpoint
    )
    made.run = rows.make("experiments.Run", experiment=made.experiment, variant=made.variant, item=made.item, output="Hello Ada")
    made.playground_call = rows.make(
        "experiments.PlaygroundCall", project=made.project, user=made.user, prompt=made.prompt, version=1,
        endpoint=made.endpoint, batch=uuid.uuid4(),
    )  # fmt: skip

    evaluator = {"name": "says-hello", "kind": "contains", "config": {"value": "Hello"}}
    made.evaluator = rows.make("evaluations.Evaluator", project=made.project, **evaluator)
    made.evaluator_history = rows.make("evaluations.HistoricalEvaluator", id=made.evaluator.pk, project=made.project, **evaluator, **history)
    made.approval = rows.make(
        "evaluations.ApprovalRequest", project=made.project, prompt=made.prompt, prompt_name="greeting", version=1,
        message="Ready", status="approved", proposed_by=made.user, decided_by=made.user, decided_at=now,
        gate_experiment=made.experiment, gate_passed=True, label_move=made.label_move,
    )  # fmt: skip
    made.notification = rows.make(
        "evaluations.Notification", user=made.user, project=made.project, approval=made.approval,
        text="greeting v1 was approved", url="/support-bot/approvals/",
    )  # fmt: skip
    webhook = {"name": "Slack #releases", "url": "https://hooks.example.com/releases", "events": ["label.moved"]}
    made.webhook = rows.make("evaluations.Webhook", project=made.project, secret="s3cret", created_by=made.user, **webhook)
    made.webhook_history = rows.make(
        "evaluations.HistoricalWebhook", id=made.webhook.pk, project=made.project, created_by=made.user, **webhook, **history
    )
    made.delivery = rows.make(
        "evaluations.WebhookDelivery", webhook=made.webhook, event="label.moved", event_id=uuid.uuid4(),
        payload={"label": "production", "to_version": 1}, status="succeeded", attempts=1, finished_at=now,
    )  # fmt: skip
    made.attempt = rows.make(
        "evaluations.WebhookAttempt", delivery=made.delivery, number=1, started_at=now, duration_ms=12.5,
        status_code=200, response_excerpt="ok",
    )  # fmt: skip

    # The content types as they were; post_migrate made them in the test database (and migrating
    # back relabelled them), an old production database has them from the start.
    content_types = apps.get_model("contenttypes", "ContentType").objects
    assert not content_types.filter(app_label__in=NEW_APPS).exists(), "migrating back left content types under the new labels"
    made.content_type_ids = {
        (old, model): content_types.get_or_create(app_label=old, model=model)[0].pk for (old, model) in NEW_LABEL
    }
    permissions = apps.get_model("auth", "Permission").objects
    made.permissions = {}
    for old, codename, name in [("prompts", "change_project", "Can change project"),
                                ("prompts", "view_modelendpoint", "Can view model endpoint"),
                                ("evaluations", "view_webhook", "Can view webhook")]:  # fmt: skip
        content_type_id = made.content_type_ids[(old, codename.split("_", 1)[1])]
        made.permissions[codename] = permissions.get_or_create(
            content_type_id=content_type_id, codename=codename, defaults={"name": name}
        )[0]
    made.user.user_permissions.add(*made.permissions.values())
    made.log_entry = apps.get_model("admin", "LogEntry").objects.create(
        action_time=now, user=made.user, content_type_id=made.content_type_ids[("prompts", "project")],
        object_id=str(made.project.pk), object_repr="Support bot", action_flag=ADDITION, change_message="[]",
    )  # fmt: skip
    return made


def assert_rows_kept(rows: Rows) -> None:
    """Every row made before the move, read through today's model, has the same columns."""
    for (label, model_name), pk, columns in rows.stored:
        model = current_apps.get_model(NEW_LABEL.get((label, model_name), label), model_name)
        found = model.objects.filter(pk=pk).values(*columns).first()
        assert found == columns, f"{label}.{model_name} {pk} before the move, now {model._meta.label}: {found}"


def assert_relations_kept(made: SimpleNamespace) -> None:
    """The foreign keys resolve to today's classes: a moved model from an old one, and back."""
    user = get_user_model().objects.get(pk=made.user.pk)
    project = Project.objects.get(pk=made.project.pk)
    endpoint = ModelEndpoint.objects.get(pk=made.endpoint.pk)
    assert (project.slug, project.name, project.require_approval) == ("support-bot", "Support bot", True)

    membership = Membership.objects.get(pk=made.membership.pk)
    assert (membership.project, membership.user, membership.role) == (project, user, "owner")
    assert list(project.members.all()) == [user]
    api_key = ApiKey.objects.get(pk=made.api_key.pk)
    assert (api_key.project, api_key.created_by, api_key.prefix) == (project, user, "pl_abc123")
    assert project.history.get().history_user == user
    assert membership.history.get().project == project
    assert api_key.history.get().project == project
    assert endpoint.history.get().name == "gpt-mini"

    prompt = Prompt.objects.get(pk=made.prompt.pk)
    assert (prompt.project, prompt.endpoint) == (project, endpoint)
    assert (prompt.history.get().project, prompt.history.get().endpoint) == (project, endpoint)
    assert Label.objects.get(pk=made.label.pk).prompt == prompt
    call = PromptCall.objects.get(pk=made.call.pk)
    assert (call.project, call.prompt, call.endpoint, call.api_key) == (project, prompt, endpoint, api_key)
    assert list(api_key.calls.all()) == [call]
    assert CallFeedback.objects.get(pk=made.feedback.pk).api_key == api_key

    dataset = Dataset.objects.get(pk=made.dataset.pk)
    assert dataset.project == project and dataset.history.get().project == project
    item = DatasetItem.objects.get(pk=made.item.pk)
    experiment = Experiment.objects.get(pk=made.experiment.pk)
    assert (experiment.project, experiment.dataset, item.dataset) == (project, dataset, dataset)
    variant = Variant.objects.get(pk=made.variant.pk)
    assert (variant.experiment, variant.prompt, variant.endpoint) == (experiment, prompt, endpoint)
    run = Run.objects.get(pk=made.run.pk)
    assert (run.experiment, run.variant, run.item) == (experiment, variant, item)
    playground_call = PlaygroundCall.objects.get(pk=made.playground_call.pk)
    assert (playground_call.project, playground_call.endpoint, playground_call.prompt) == (project, endpoint, prompt)

    evaluator = Evaluator.objects.get(pk=made.evaluator.pk)
    assert evaluator.project == project and evaluator.history.get().project == project
    approval = ApprovalRequest.objects.get(pk=made.approval.pk)
    assert (approval.project, approval.prompt, approval.gate_experiment, approval.proposed_by) == (project, prompt, experiment, user)
    assert approval.label_move == LabelMove.objects.get(pk=made.label_move.pk)
    notification = Notification.objects.get(pk=made.notification.pk)
    assert (notification.project, notification.user, notification.approval) == (project, user, approval)
    webhook = Webhook.objects.get(pk=made.webhook.pk)
    assert (webhook.project, webhook.created_by, webhook.secret) == (project, user, "s3cret")
    assert webhook.history.get().project == project
    delivery = WebhookDelivery.objects.get(pk=made.delivery.pk)
    assert delivery.webhook == webhook
    assert WebhookAttempt.objects.get(pk=made.attempt.pk).delivery == delivery


def assert_content_types_followed(made: SimpleNamespace) -> None:
    """Same ids, new labels: permissions and admin log entries still name the moved models."""
    ContentType.objects.clear_cache()
    for (old, model_name), content_type_id in made.content_type_ids.items():
        new = NEW_LABEL[(old, model_name)]
        content_type = ContentType.objects.filter(pk=content_type_id).first()
        assert content_type, f"the content type of {old}.{model_name} (id {content_type_id}) is gone"
        assert (content_type.app_label, content_type.model) == (new, model_name)
        assert content_type.model_class() is current_apps.get_model(new, model_name)
    for old, model_names in MOVED.values():
        left = ContentType.objects.filter(app_label=old, model__in=model_names).values_list("model", flat=True)
        assert not left, f"content types left under {old}: {list(left)}"
    assert ContentType.objects.get_for_model(Project).pk == made.content_type_ids[("prompts", "project")]

    permission = Permission.objects.get(pk=made.permissions["change_project"].pk)
    assert permission.content_type.model_class() is Project
    assert Permission.objects.get(pk=made.permissions["view_webhook"].pk).content_type.model_class() is Webhook
    user = get_user_model().objects.get(pk=made.user.pk)  # fresh: has_perm caches per instance
    assert user.get_all_permissions() == {"accounts.change_project", "llm.view_modelendpoint", "governance.view_webhook"}

    log_entry = LogEntry.objects.get(pk=made.log_entry.pk)
    assert log_entry.content_type.model_class() is Project
    assert log_entry.get_edited_object() == Project.objects.get(pk=made.project.pk)


@pytest.mark.django_db(transaction=True)
def test_moving_models_between_apps_keeps_rows_relations_and_content_types(latest_schema_after):
    before = migrate_back()
    rows = Rows(before)
    made = fill(before, rows)
    missing = tables_to_fill(before) - rows.tables()
    assert not missing, f"tables of (or pointing at) moved models that the test leaves empty: {sorted(missing)}"

    migrate_to_latest()

    assert_rows_kept(rows)
    assert_relations_kept(made)
    assert_content_types_followed(made)
