"""Prompts as a folder of YAML files: export, all-or-nothing import, and the two commands."""

import textwrap

import pytest
import yaml
from django.core.management import CommandError, call_command

from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from prompts import services
from prompts.models import Label, LabelMove, Prompt
from prompts.yaml_io import prompts_export, prompts_import
from tests.factories import MembershipFactory, ModelEndpointFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def model():
    return ModelEndpointFactory(name="gpt-mini")


@pytest.fixture
def project():
    return ProjectFactory(slug="support")


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


GREETING = textwrap.dedent("""\
    name: greeting
    kind: text
    template: |
      Hello {{ customer }}!
      How can I help?
    model: gpt-mini
""")

TRIAGE = textwrap.dedent("""\
    name: triage
    description: Sorts tickets.
    kind: chat
    messages:
      - role: system
        content: You sort tickets.
      - placeholder: history
      - role: user
        content: "{{ ticket }}"
    model: gpt-mini
    params: {temperature: 0.2}
    variables:
      - {name: ticket, type: string, required: true}
""")


def contents(project):
    return {
        prompt.name: {field: getattr(prompt, field) for field in [*Prompt.CONTENT_FIELDS, "version"]}
        for prompt in Prompt.objects.filter(project=project)
    }


def labels(project):
    return set(Label.objects.filter(prompt__project=project).values_list("prompt__name", "name", "version"))


# --- Round trip and versions -------------------------------------------------------------


def test_export_then_import_into_another_project_gives_identical_content(tmp_path, project, model):
    snippet = services.prompt_create(project=project, actor=None, name="signature", message="m", template="-- The team", endpoint=model)  # fmt: skip
    reply = services.prompt_create(
        project=project, actor=None, name="reply", message="m", endpoint=model, description="Answers a customer.",
        tags=["support", "email"], template="Dear {{ customer }},\n\n{{ answer }}\n\n{% include \"signature\" %}\n",
        params={"temperature": 0.3, "max_tokens": 200, "stop": ["END"]}, strict_variables=False,
        variables=[{"name": "customer", "type": "string", "required": True, "description": "Full name"}, {"name": "answer"}],
    )  # fmt: skip
    chat = services.prompt_create(
        project=project, actor=None, name="chat", message="m", endpoint=model, kind="chat",
        messages=[{"role": "system", "content": "Be brief.\nBe kind."}, {"placeholder": "history"}, {"role": "user", "content": "{{ q }}"}],
    )  # fmt: skip
    services.label_move(prompt=reply, actor=None, label="production", version=1)
    services.label_move(prompt=snippet, actor=None, label="staging", version=1)
    services.prompt_update(prompt=chat, actor=None, message="m2", params={"seed": 7})
    services.label_move(prompt=chat, actor=None, label="production", version=1)  # not the exported version

    written = prompts_export(project=project, folder=tmp_path / "out")
    other = ProjectFactory()
    report = prompts_import(project=other, actor=None, folder=tmp_path / "out")
    prompts_export(project=other, folder=tmp_path / "again")

    assert [path.name for path in written] == ["chat.yaml", "reply.yaml", "signature.yaml"]
    assert sorted(report.created) == ["chat", "reply", "signature"]
    for path in written:
        assert (tmp_path / "again" / path.name).read_text() == path.read_text()
    expected = contents(project)
    expected["chat"]["version"] = 1  # the import is the first version in the other project
    assert contents(other) == expected
    assert labels(other) == {("reply", "production", 1), ("signature", "staging", 1)}
    text = (tmp_path / "out" / "reply.yaml").read_text()
    assert "template: |\n  Dear {{ customer }},\n\n  {{ answer }}\n" in text  # readable as a block
    assert text.startswith("name: reply\ndescription: Answers a customer.\n")  # keys in the documented order
    assert "labels:\n- production\n" in text


def test_import_creates_version_one_with_a_message_naming_the_file(tmp_path, project, model):
    write(tmp_path, "greeting.yaml", GREETING)
    write(tmp_path, "triage.yaml", TRIAGE)

    report = prompts_import(project=project, actor=None, folder=tmp_path)

    assert report.created == ["greeting", "triage"]
    greeting = Prompt.objects.get(project=project, name="greeting")
    assert greeting.template == "Hello {{ customer }}!\nHow can I help?\n"
    assert greeting.endpoint == model
    assert greeting.strict_variables is True
    assert list(greeting.history.values_list("version", "history_change_reason", "history_user")) == [
        (1, "Imported from greeting.yaml", None)
    ]
    triage = Prompt.objects.get(project=project, name="triage")
    assert triage.kind == "chat"
    assert triage.messages[1] == {"placeholder": "history"}
    assert triage.params == {"temperature": 0.2}
    assert triage.used_variables == ["history", "ticket"]


def test_reimport_of_unchanged_files_creates_no_version_and_a_change_creates_one(tmp_path, project, model):
    write(tmp_path, "greeting.yaml", GREETING)
    write(tmp_path, "triage.yaml", TRIAGE)
    prompts_import(project=project, actor=None, folder=tmp_path)

    again = prompts_import(project=project, actor=None, folder=tmp_path)
    write(tmp_path, "greeting.yaml", GREETING.replace("How can I help?", "What can I do?"))
    changed = prompts_import(project=project, actor=None, folder=tmp_path, message="Friendlier")

    assert (again.created, again.updated, again.unchanged) == ([], [], ["greeting", "triage"])
    assert (changed.updated, changed.unchanged) == (["greeting"], ["triage"])
    greeting = Prompt.objects.get(project=project, name="greeting")
    assert list(greeting.history.order_by("version").values_list("version", "history_change_reason")) == [
        (1, "Imported from greeting.yaml"),
        (2, "Friendlier"),
    ]
    assert Prompt.objects.get(project=project, name="triage").version == 1


def test_the_name_key_wins_over_the_file_name_which_is_the_default(tmp_path, project, model):
    write(tmp_path, "hello.yaml", GREETING)  # name: greeting
    write(tmp_path, "farewell.yaml", "kind: text\ntemplate: Bye\nmodel: gpt-mini\n")

    report = prompts_import(project=project, actor=None, folder=tmp_path)

    assert sorted(report.created) == ["farewell", "greeting"]


def test_a_prompt_may_include_a_snippet_from_a_later_file(tmp_path, project, model):
    write(tmp_path, "a-reply.yaml", 'kind: text\ntemplate: Hi {% include "z-signature" %}\nmodel: gpt-mini\n')
    write(tmp_path, "z-signature.yaml", "kind: text\ntemplate: The team\nmodel: gpt-mini\n")

    report = prompts_import(project=project, actor=None, folder=tmp_path)

    assert sorted(report.created) == ["a-reply", "z-signature"]


# --- All or nothing, with the file and line of every problem --------------------------------

INVALID_FILES = {
    "yaml-syntax": (
        "name: broken\nkind: text\ntemplate: [unclosed\nmodel: gpt-mini\n",
        "broken.yaml, line 4: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence started on line 3).",
    ),
    "template-syntax": (
        "name: broken\nkind: text\ntemplate: |\n  Hello\n  {{ customer }\n  Bye\nmodel: gpt-mini\n",
        "broken.yaml, line 5: template: Template, line 2: unexpected '}'",
    ),
    "unknown-model": (
        "name: broken\nkind: text\ntemplate: Hello\nmodel: gpt-5-ultra\n",
        "broken.yaml, line 4: there is no model named 'gpt-5-ultra' in the catalog (models: gpt-mini).",
    ),
    "unknown-key": (
        "name: broken\nkind: text\ntemplate: Hello\nmodel: gpt-mini\ntemprature: 0.2\n",
        "broken.yaml, line 5: unknown key 'temprature'; the keys are name, description, tags, kind",
    ),
    "bad-params": (
        "name: broken\nkind: text\ntemplate: Hello\nmodel: gpt-mini\nparams:\n  temperature: 7\n",
        "broken.yaml, line 5: params: Invalid model parameters: temperature must be between 0 and 2.",
    ),
    "chat-message-syntax": (
        "name: broken\nkind: chat\nmodel: gpt-mini\nmessages:\n  - role: system\n    content: Fine\n  - role: user\n    content: '{% if x %}'\n",
        "broken.yaml, line 8: messages: Message 2, line 1: Unexpected end of template",
    ),
}


@pytest.mark.parametrize("case", INVALID_FILES)
def test_one_invalid_file_imports_nothing_and_the_error_names_its_file_and_line(tmp_path, project, model, case):
    text, expected = INVALID_FILES[case]
    write(tmp_path, "a-greeting.yaml", GREETING)
    write(tmp_path, "broken.yaml", text)
    write(tmp_path, "triage.yaml", TRIAGE)

    with pytest.raises(Invalid) as raised:
        prompts_import(project=project, actor=None, folder=tmp_path)

    assert not Prompt.objects.filter(project=project).exists()
    assert raised.value.message.startswith("Nothing was imported: 1 of 3 files has problems.\n")
    assert expected in raised.value.message
    assert list(raised.value.details) == ["broken.yaml"]
    assert raised.value.details["broken.yaml"].startswith(f"line {expected.split('line ')[1].split(':')[0]}: ")


def test_every_files_problems_are_listed_and_existing_prompts_are_left_as_they_were(tmp_path, project, model):
    write(tmp_path, "greeting.yaml", GREETING)
    prompts_import(project=project, actor=None, folder=tmp_path)
    write(tmp_path, "greeting.yaml", GREETING.replace("How can I help?", "Changed"))
    write(tmp_path, "one.yaml", "kind: text\ntemplate: '{{ x }'\nmodel: nope\nlabels: [production]\nextra: 1\n")
    write(tmp_path, "two.yaml", "kind: poem\nmodel: gpt-mini\n")
    write(tmp_path, "three.yaml", "- just\n- a list\n")

    with pytest.raises(Invalid) as raised:
        prompts_import(project=project, actor=None, folder=tmp_path)

    message = raised.value.message
    assert message.splitlines()[0] == "Nothing was imported: 3 of 4 files have problems."
    assert "one.yaml, line 5: unknown key 'extra'" in message
    assert "one.yaml, line 3: there is no model named 'nope'" in message
    assert "three.yaml, line 1: expected a mapping with the keys name, description" in message
    assert "two.yaml, line 1: kind must be text or chat, not 'poem'." in message
    assert set(raised.value.details) == {"one.yaml", "two.yaml", "three.yaml"}
    assert Prompt.objects.get(project=project, name="greeting").version == 1


def test_two_files_for_the_same_prompt_are_refused(tmp_path, project, model):
    write(tmp_path, "greeting.yaml", GREETING)
    write(tmp_path, "hello.yaml", GREETING)

    with pytest.raises(Invalid, match=r"hello.yaml, line 1: the prompt 'greeting' is also in greeting.yaml"):
        prompts_import(project=project, actor=None, folder=tmp_path)
    assert not Prompt.objects.exists()


def test_a_folder_without_yaml_files_is_refused(tmp_path, project):
    with pytest.raises(Invalid, match="has no .yaml files"):
        prompts_import(project=project, actor=None, folder=tmp_path)
    with pytest.raises(Invalid, match="is not a folder"):
        prompts_import(project=project, actor=None, folder=tmp_path / "missing")


def test_yaml_tags_that_build_objects_are_refused(tmp_path, project, model):
    write(tmp_path, "evil.yaml", "name: !!python/object/apply:os.system ['true']\nkind: text\ntemplate: x\nmodel: gpt-mini\n")

    with pytest.raises(Invalid, match=r"evil.yaml, line 1: invalid YAML: could not determine a constructor"):
        prompts_import(project=project, actor=None, folder=tmp_path)


# --- Labels ----------------------------------------------------------------------------------


def test_labels_point_at_the_imported_version_and_follow_a_changed_file(tmp_path, project, model):
    write(tmp_path, "greeting.yaml", GREETING + "labels: [production, staging]\n")
    first = prompts_import(project=project, actor=None, folder=tmp_path)
    write(tmp_path, "greeting.yaml", GREETING.replace("help", "assist") + "labels: [staging]\n")
    second = prompts_import(project=project, actor=None, folder=tmp_path)

    assert first.labels_moved == [("greeting", "production", 1), ("greeting", "staging", 1)]
    assert second.labels_moved == [("greeting", "staging", 2)]
    assert labels(project) == {("greeting", "production", 1), ("greeting", "staging", 2)}  # unlisted labels stay
    move = LabelMove.objects.get(label="staging", to_version=2)
    assert (move.from_version, move.message) == (1, "Imported from greeting.yaml")


def test_an_editor_may_not_import_a_production_label_and_nothing_is_imported(tmp_path, project, model):
    editor = MembershipFactory(project=project, role=Role.EDITOR).user
    write(tmp_path, "a-triage.yaml", TRIAGE)
    write(tmp_path, "greeting.yaml", GREETING + "labels: [staging, production]\n")

    with pytest.raises(Forbidden) as raised:
        prompts_import(project=project, actor=editor, folder=tmp_path)

    assert "greeting.yaml, line 7: " in raised.value.message  # the labels line
    assert "needs the admin role" in raised.value.message
    assert not Prompt.objects.exists()
    assert not Label.objects.exists()


def test_an_admin_may_import_a_production_label(tmp_path, project, model):
    admin = MembershipFactory(project=project, role=Role.ADMIN).user
    write(tmp_path, "greeting.yaml", GREETING + "labels: [production]\n")

    prompts_import(project=project, actor=admin, folder=tmp_path)

    greeting = Prompt.objects.get(name="greeting")
    assert greeting.history.get().history_user == admin
    assert labels(project) == {("greeting", "production", 1)}


def test_a_viewer_may_not_import_at_all(tmp_path, project, model):
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    write(tmp_path, "greeting.yaml", GREETING)

    with pytest.raises(Forbidden, match="greeting.yaml: .* needs the editor role"):
        prompts_import(project=project, actor=viewer, folder=tmp_path)
    assert not Prompt.objects.exists()


def test_export_of_a_label_writes_the_version_it_points_at_and_skips_prompts_without_it(tmp_path, project, model):
    write(tmp_path / "in", "greeting.yaml", GREETING + "labels: [production]\n")
    write(tmp_path / "in", "triage.yaml", TRIAGE)
    prompts_import(project=project, actor=None, folder=tmp_path / "in")
    greeting = Prompt.objects.get(name="greeting")
    services.prompt_update(prompt=greeting, actor=None, message="Draft", template="Draft {{ customer }}")

    written = prompts_export(project=project, folder=tmp_path / "out", label="production")

    assert [path.name for path in written] == ["greeting.yaml"]
    data = yaml.safe_load(written[0].read_text())
    assert data["template"] == "Hello {{ customer }}!\nHow can I help?\n"
    assert data["labels"] == ["production"]
    latest = yaml.safe_load(prompts_export(project=project, folder=tmp_path / "latest")[0].read_text())
    assert latest["template"] == "Draft {{ customer }}"
    assert "labels" not in latest


# --- Commands --------------------------------------------------------------------------------


def test_import_command_prints_what_it_did(tmp_path, project, model, capsys):
    write(tmp_path, "greeting.yaml", GREETING + "labels: [production]\n")
    write(tmp_path, "triage.yaml", TRIAGE)

    call_command("import_prompts", str(tmp_path), "--project", "support", "--message", "From git")

    out = capsys.readouterr().out
    assert "Created greeting.\nCreated triage.\nMoved production of greeting to version 1.\n" in out
    assert "Imported 2 prompts into support: 2 created, 0 updated, 0 unchanged." in out
    assert Prompt.objects.get(name="greeting").history.get().history_change_reason == "From git"

    call_command("import_prompts", str(tmp_path), "--project", "support")
    assert "Unchanged greeting.\nUnchanged triage.\n" in capsys.readouterr().out


def test_import_command_errors(tmp_path, project, model):
    write(tmp_path, "broken.yaml", "kind: text\ntemplate: Hi\nmodel: gpt-mini\nlabel: production\n")

    with pytest.raises(CommandError, match="No project with the slug 'nope'. Create it with `create_project nope`"):
        call_command("import_prompts", str(tmp_path), "--project", "nope")
    with pytest.raises(CommandError, match=r"Nothing was imported: 1 of 1 files has problems.\nbroken.yaml, line 4: unknown key 'label'"):
        call_command("import_prompts", str(tmp_path), "--project", "support")
    assert not Prompt.objects.exists()


def test_export_command_prints_what_it_wrote(tmp_path, project, model, capsys):
    write(tmp_path / "in", "greeting.yaml", GREETING + "labels: [production]\n")
    write(tmp_path / "in", "triage.yaml", TRIAGE)
    prompts_import(project=project, actor=None, folder=tmp_path / "in")

    call_command("export_prompts", str(tmp_path / "out"), "--project", "support")
    out = capsys.readouterr().out
    call_command("export_prompts", str(tmp_path / "prod"), "--project", "support", "--label", "production")
    prod = capsys.readouterr().out

    assert f"Wrote {tmp_path / 'out' / 'greeting.yaml'}.\nWrote {tmp_path / 'out' / 'triage.yaml'}.\n" in out
    assert f"Exported the latest version of 2 prompts of support to {tmp_path / 'out'}." in out
    assert f"Exported the production version of 1 prompt of support to {tmp_path / 'prod'}." in prod
    exported = yaml.safe_load((tmp_path / "out" / "greeting.yaml").read_text())
    assert exported == {**yaml.safe_load(GREETING), "params": {}, "variables": [], "strict_variables": True, "labels": ["production"]}


def test_export_command_errors(tmp_path, project, model):
    (tmp_path / "file").write_text("")

    with pytest.raises(CommandError, match="No project with the slug 'nope'"):
        call_command("export_prompts", str(tmp_path), "--project", "nope")
    with pytest.raises(CommandError, match="No prompt of support has the label 'production'; nothing was exported."):
        call_command("export_prompts", str(tmp_path / "out"), "--project", "support", "--label", "production")
    with pytest.raises(CommandError, match="exists and is not a folder"):
        call_command("export_prompts", str(tmp_path / "file"), "--project", "support")
    with pytest.raises(CommandError, match="--label takes a label such as production; 'v3' is a version number"):
        call_command("export_prompts", str(tmp_path / "out"), "--project", "support", "--label", "v3")
