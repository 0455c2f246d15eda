"""Prompt versions and labels through the services, the only writers."""

import pytest

from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid, NotFound
from prompts import selectors, services
from prompts.models import Label, LabelMove, Prompt
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor():
    return MembershipFactory(role=Role.EDITOR)


@pytest.fixture
def model():
    return ModelEndpointFactory()


def create(member, model, name="greet", template="Hello {{ name }}!", message="First draft", **fields):
    return services.prompt_create(project=member.project, actor=member.user, name=name, message=message, template=template, endpoint=model, **fields)  # fmt: skip


def test_each_save_is_one_attributed_version_with_its_message(editor, model):
    prompt = create(editor, model)
    prompt = services.prompt_update(prompt=prompt, actor=editor.user, message="Warmer tone", template="Hi {{ name }}!")

    history = list(prompt.history.order_by("version").values_list("version", "history_user", "history_change_reason", "template"))
    assert history == [
        (1, editor.user.pk, "First draft", "Hello {{ name }}!"),
        (2, editor.user.pk, "Warmer tone", "Hi {{ name }}!"),
    ]
    assert prompt.used_variables == ["name"]


def test_a_save_without_change_creates_no_version(editor, model):
    prompt = create(editor, model)

    same = services.prompt_update(prompt=prompt, actor=editor.user, message="Nothing really", template=prompt.template)

    assert same.version == 1 and prompt.history.count() == 1


def test_a_change_message_is_required(editor, model):
    with pytest.raises(Invalid, match="change message is required"):
        create(editor, model, message="  ")
    assert not Prompt.objects.exists()


@pytest.mark.parametrize(
    "fields, field, fragment",
    [
        ({"template": "Hello {{ name }"}, "template", "Template, line 1: unexpected '}'"),
        ({"template": "Hi\n{% if x %}\nno end"}, "template", "Template, line 2: Unexpected end of template"),
        ({"template": "{% include 'nope' %}"}, "template", "'nope' does not exist in this project"),
        ({"params": {"temperature": 7}}, "params", "temperature must be between 0 and 2"),
        ({"kind": "chat", "messages": [{"role": "robot", "content": "x"}]}, "messages", "Message 1 must be"),
        ({"variables": [{"name": "x", "type": "date"}]}, "variables", "use one of string"),
    ],
)
def test_invalid_content_names_the_problem_and_saves_nothing(editor, model, fields, field, fragment):
    prompt = create(editor, model)

    with pytest.raises(Invalid) as error:
        services.prompt_update(prompt=prompt, actor=editor.user, message="Break it", **fields)

    assert fragment in error.value.details[field]
    assert prompt.history.count() == 1
    assert Prompt.objects.get(pk=prompt.pk).template == "Hello {{ name }}!"


def test_a_disabled_model_is_refused(editor, model):
    model.enabled = False
    model.save()
    with pytest.raises(Invalid, match="is disabled"):
        create(editor, model)


def test_viewers_cannot_write(model):
    viewer = MembershipFactory(role=Role.VIEWER)
    with pytest.raises(Forbidden):
        create(viewer, model)


def test_revert_saves_old_content_as_a_new_version(editor, model):
    prompt = create(editor, model)
    prompt = services.prompt_update(prompt=prompt, actor=editor.user, message="v2", template="Hi {{ name }}", params={"temperature": 0.2})

    reverted = services.prompt_revert(prompt=prompt, actor=editor.user, version=1)

    assert reverted.version == 3
    assert (reverted.template, reverted.params) == ("Hello {{ name }}!", {})
    assert selectors.prompt_version(prompt=reverted, version=3).history_change_reason == "Revert to version 1"
    assert selectors.prompt_version(prompt=reverted, version=2).template == "Hi {{ name }}"  # history untouched


def test_labels_move_with_a_record_and_roll_back(model):
    admin = MembershipFactory(role=Role.ADMIN)
    prompt = create(admin, model)
    prompt = services.prompt_update(prompt=prompt, actor=admin.user, message="v2", template="Hi {{ name }}")

    services.label_move(prompt=prompt, actor=admin.user, label="production", version=1)
    services.label_move(prompt=prompt, actor=admin.user, label="production", version=2, message="ship it")
    services.label_rollback(prompt=prompt, actor=admin.user, label="production")

    assert Label.objects.get(prompt=prompt, name="production").version == 1
    moves = list(LabelMove.objects.filter(prompt=prompt).values_list("from_version", "to_version", "actor", "message"))
    assert moves == [(2, 1, admin.user.pk, "Roll back from version 2"), (1, 2, admin.user.pk, "ship it"), (None, 1, admin.user.pk, "")]
    assert selectors.prompt_version(prompt=prompt, label="production").version == 1
    assert selectors.prompt_version(prompt=prompt, label="latest").version == 2


def test_editors_move_staging_but_not_production(editor, model):
    prompt = create(editor, model)

    services.label_move(prompt=prompt, actor=editor.user, label="staging", version=1)
    with pytest.raises(Forbidden, match="needs the admin role"):
        services.label_move(prompt=prompt, actor=editor.user, label="production", version=1)
    assert list(prompt.labels.values_list("name", flat=True)) == ["staging"]


@pytest.mark.parametrize(
    "label, version, error, fragment",
    [("latest", 1, Invalid, "cannot be moved"), ("Not a slug!", 1, Invalid, "not a valid label"), ("staging", 9, NotFound, "has no version 9"),
     ("v3", 1, Invalid, "'v3' reads as a version number"), ("3", 1, Invalid, "reads as a version number"),
     ("-1", 1, Invalid, "reads as a version number")],
)  # fmt: skip
def test_bad_label_moves_are_refused(editor, model, label, version, error, fragment):
    prompt = create(editor, model)
    with pytest.raises(error, match=fragment):
        services.label_move(prompt=prompt, actor=editor.user, label=label, version=version)
    assert not prompt.labels.exists()


def test_include_cycles_and_depth_are_refused(editor, model):
    create(editor, model, name="a", template="A")
    for name, target in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")]:
        create(editor, model, name=name, template=f"{name.upper()} {{% include '{target}' %}}")

    with pytest.raises(Invalid, match="nest deeper than 5 levels"):
        create(editor, model, name="g", template="{% include 'f' %}")
    a = Prompt.objects.get(name="a")
    with pytest.raises(Invalid, match="Include cycle: a → c → b → a"):
        services.prompt_update(prompt=a, actor=editor.user, message="loop", template="{% include 'c' %}")


def test_prompt_names_are_unique_per_project(editor, model):
    create(editor, model)
    with pytest.raises(Invalid, match="already has a prompt named 'greet'"):
        create(editor, model)
    create(MembershipFactory(role=Role.EDITOR), model)  # another project may reuse the name


def test_saved_versions_cannot_be_changed(editor, model):
    from django.core.exceptions import ValidationError

    record = create(editor, model).history.get()
    record.template = "rewritten history"

    with pytest.raises(ValidationError, match="immutable"):
        record.save()
    assert Prompt.history.get().template == "Hello {{ name }}!"


def test_label_history_outlives_the_prompt(model):
    admin = MembershipFactory(role=Role.ADMIN)
    prompt = create(admin, model)
    services.label_move(prompt=prompt, actor=admin.user, label="production", version=1)

    services.prompt_delete(prompt=prompt, actor=admin.user)

    assert list(LabelMove.objects.values_list("prompt", "prompt_name", "to_version")) == [(None, "greet", 1)]


def test_an_update_from_an_old_base_version_is_refused(editor, model):
    prompt = create(editor, model)
    services.prompt_update(prompt=prompt, actor=editor.user, message="v2", template="Newer")

    with pytest.raises(Invalid, match="Version 2 was saved after version 1"):
        services.prompt_update(prompt=prompt, actor=editor.user, message="stale", base_version=1, template="Stale")
    assert Prompt.objects.get(pk=prompt.pk).template == "Newer"


def test_an_unknown_filter_is_refused_with_its_line_and_nothing_saved(endpoint):
    owner = MembershipFactory(role=Role.OWNER)
    with pytest.raises(Invalid, match="line 2: No filter named 'dump'"):
        services.prompt_create(project=owner.project, actor=owner.user, name="p", message="v1", template="Hi\n{{ x | dump }}", endpoint=endpoint)
    assert not Prompt.objects.exists()
