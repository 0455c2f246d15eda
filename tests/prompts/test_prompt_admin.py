import pytest
from bs4 import BeautifulSoup

from promptlab.accounts.models import Role
from prompts import services
from prompts.models import Label, Prompt
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = pytest.mark.django_db
BASE = "/admin/prompts/prompt/"


@pytest.fixture
def model():
    return ModelEndpointFactory(display_name="Demo", model="promptlab-demo/echo")


def member(role):
    return MembershipFactory(role=role)


def create(m, model, name="greet", template="Hello {{ name }}!"):
    return services.prompt_create(project=m.project, actor=m.user, name=name, message="First draft", template=template, endpoint=model)


def form_data(prompt_or_project, model, **overrides):
    data = {
        "description": "", "tags": "[]", "kind": "text", "template": "Hello {{ name }}!", "messages": "[]",
        "endpoint": str(model.pk), "params": "{}", "variables": "[]", "strict_variables": "on", "change_message": "Edit",
        "base_version": str(prompt_or_project.version) if isinstance(prompt_or_project, Prompt) else "",
    }  # fmt: skip
    return {**data, **overrides}


def test_list_shows_labels_and_last_change_only_for_own_projects(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    services.label_move(prompt=prompt, actor=editor.user, label="staging", version=1)
    create(member(Role.OWNER), model, name="elsewhere")
    client.force_login(editor.user)

    page = client.get(BASE).content.decode()

    assert "greet" in page and "elsewhere" not in page
    assert "staging → v1" in page
    assert editor.user.email in page


def test_list_queries_do_not_grow_with_prompts(client, model, django_assert_num_queries):
    editor = member(Role.EDITOR)
    client.force_login(editor.user)
    for n in range(3):
        create(editor, model, name=f"p{n}")
    with django_assert_num_queries(12):
        client.get(BASE)
    for n in range(3, 23):
        create(editor, model, name=f"p{n}")
    with django_assert_num_queries(12):
        client.get(BASE)


def test_editing_saves_a_version_with_the_change_message(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)

    response = client.post(f"{BASE}{prompt.pk}/change/", form_data(prompt, model, template="Hi {{ name }}", change_message="Shorter"))

    assert response.status_code == 302
    record = prompt.history.get(version=2)
    assert (record.template, record.history_change_reason, record.history_user) == ("Hi {{ name }}", "Shorter", editor.user)


def test_the_change_message_is_required(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)

    response = client.post(f"{BASE}{prompt.pk}/change/", form_data(prompt, model, template="Hi", change_message=""))

    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert prompt.history.count() == 1


def test_template_errors_show_on_the_form_and_create_no_version(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)

    response = client.post(f"{BASE}{prompt.pk}/change/", form_data(prompt, model, template="Hi {{ name }\n", params='{"max_tokens": 0}'))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Template, line 1: unexpected &#x27;}&#x27;" in page
    assert "max_tokens must be between 1 and 1000000" in page
    assert prompt.history.count() == 1


def test_adding_a_prompt_in_the_admin(client, model):
    editor = member(Role.EDITOR)
    client.force_login(editor.user)

    response = client.post(f"{BASE}add/", form_data(None, model, project=str(editor.project.pk), name="welcome", change_message="New"))

    assert response.status_code == 302, response.content.decode()[:2000]
    prompt = Prompt.objects.get(name="welcome")
    assert prompt.version == 1 and prompt.history.get().history_change_reason == "New"


def test_a_viewer_sees_but_cannot_save(client, model):
    viewer = member(Role.VIEWER)
    prompt = create(member(Role.OWNER), model)
    MembershipFactory(project=prompt.project, user=viewer.user, role=Role.VIEWER)
    client.force_login(viewer.user)

    assert client.get(f"{BASE}{prompt.pk}/change/").status_code == 200
    response = client.post(f"{BASE}{prompt.pk}/change/", form_data(prompt, model, template="Hacked"))
    assert response.status_code == 403
    response = client.post(f"{BASE}{prompt.pk}/revert/", {"version": "1"})
    assert response.status_code == 403


def test_versions_page_shows_authors_messages_and_word_diffs(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model, template="Hello dear {{ name }}!")
    services.prompt_update(prompt=prompt, actor=editor.user, message="Drop dear", template="Hello {{ name }}!", params={"temperature": 0.2})
    client.force_login(editor.user)

    page = BeautifulSoup(client.get(f"{BASE}{prompt.pk}/versions/").content, "html.parser")

    version_2 = page.select_one("#version-2")
    assert version_2.select_one(".change-message").get_text() == "Drop dear" and editor.user.email in version_2.p.get_text()
    assert version_2.select_one("pre.diff").decode_contents() == "Hello<del> dear</del> {{ name }}!"
    params = version_2.select_one("table.diff-keys")
    assert params.select_one("code").get_text() == "temperature" and params.select_one("ins").get_text() == "0.2"


def test_compare_any_two_versions(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model, template="one")
    for text in ["two", "three"]:
        prompt = services.prompt_update(prompt=prompt, actor=editor.user, message=text, template=text)
    client.force_login(editor.user)

    page = BeautifulSoup(client.get(f"{BASE}{prompt.pk}/compare/?a=1&b=3").content, "html.parser")

    assert [(change.name, change.get_text()) for change in page.select("pre.diff del, pre.diff ins")] == [("del", "one"), ("ins", "three")]


def test_revert_and_label_moves_from_the_versions_page(client, model):
    admin = member(Role.ADMIN)
    prompt = create(admin, model, template="one")
    services.prompt_update(prompt=prompt, actor=admin.user, message="two", template="two")
    client.force_login(admin.user)

    client.post(f"{BASE}{prompt.pk}/label/", {"label": "production", "version": "2"})
    client.post(f"{BASE}{prompt.pk}/label/", {"label": "production", "version": "1"})
    client.post(f"{BASE}{prompt.pk}/rollback/", {"label": "production"})
    response = client.post(f"{BASE}{prompt.pk}/revert/", {"version": "1"}, follow=True)

    assert Label.objects.get(prompt=prompt, name="production").version == 2
    assert Prompt.objects.get(pk=prompt.pk).template == "one" and prompt.history.count() == 3
    page = response.content.decode()
    assert "Saved the content of version 1 as version 3." in page
    assert len(BeautifulSoup(page, "html.parser").select("#label-history tr")) == 4  # header + three moves


def test_an_editor_is_told_why_production_did_not_move(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)

    response = client.post(f"{BASE}{prompt.pk}/label/", {"label": "production", "version": "1"}, follow=True)

    assert "needs the admin role" in response.content.decode()
    assert not Label.objects.exists()


def test_the_preview_renders_unsaved_content(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)
    data = {"prompt_id": str(prompt.pk), "kind": "text", "template": "Hi {{ who }}, {{ what }}", "strict_variables": "on",
            "sample_variables": '{"who": "Ada", "what": "welcome"}'}  # fmt: skip

    page = client.post(f"{BASE}preview/", data, HTTP_HX_REQUEST="true").content.decode()

    assert '<pre id="rendered-text">Hi Ada, welcome</pre>' in page
    assert "<code>what</code>, <code>who</code>" in page
    data["sample_variables"] = '{"who": "Ada"}'
    assert "Missing variables: what." in client.post(f"{BASE}preview/", data).content.decode()
    assert prompt.history.count() == 1  # nothing saved


def test_the_preview_refuses_a_prompt_of_another_project(client, model):
    prompt = create(member(Role.OWNER), model)
    client.force_login(member(Role.EDITOR).user)

    response = client.post(f"{BASE}preview/", {"prompt_id": str(prompt.pk), "template": "x"})

    assert response.status_code == 404


def test_the_export_action_downloads_yaml_that_import_reads(client, model, tmp_path):
    import io
    import zipfile

    from prompts.yaml_io import prompts_import

    editor = member(Role.EDITOR)
    create(editor, model, name="greet", template="Hello {{ name }}!\nBye.")
    client.force_login(editor.user)

    response = client.post(BASE, {"action": "export_yaml", "_selected_action": [p.pk for p in Prompt.objects.all()]})

    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == [f"{editor.project.slug}/greet.yaml"]
    archive.extractall(tmp_path)
    target = member(Role.OWNER)
    report = prompts_import(project=target.project, actor=target.user, folder=tmp_path / editor.project.slug)
    assert report.created == ["greet"]
    assert Prompt.objects.get(project=target.project).template == "Hello {{ name }}!\nBye."


def test_only_admins_delete_prompts_and_the_history_stays(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    client.force_login(editor.user)
    assert client.post(f"{BASE}{prompt.pk}/delete/", {"post": "yes"}).status_code == 403

    admin = MembershipFactory(project=editor.project, role=Role.ADMIN)
    client.force_login(admin.user)
    assert client.post(f"{BASE}{prompt.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Prompt.objects.exists()
    assert list(Prompt.history.values_list("history_type", flat=True).order_by("history_id")) == ["+", "-"]


def test_the_project_filter_lists_only_the_users_projects(client, model):
    editor = member(Role.EDITOR)
    create(editor, model)
    secret = member(Role.OWNER)
    secret.project.name = "Acme Secret Merger"
    secret.project.save()
    create(secret, model, name="other")
    client.force_login(editor.user)

    assert "Acme Secret Merger" not in client.get(BASE).content.decode()


def test_a_stale_edit_never_undoes_a_newer_version(client, model):
    editor = member(Role.EDITOR)
    prompt = create(editor, model)
    services.prompt_update(prompt=prompt, actor=editor.user, message="someone else", template="Newer {{ name }}")
    client.force_login(editor.user)

    response = client.post(f"{BASE}{prompt.pk}/change/", {**form_data(prompt, model, template="Stale"), "base_version": "1"})

    assert response.status_code == 200 and "Someone saved version 2 after version 1" in response.content.decode()
    assert Prompt.objects.get(pk=prompt.pk).template == "Newer {{ name }}" and prompt.history.count() == 2
