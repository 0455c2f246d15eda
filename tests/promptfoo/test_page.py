"""The upload page of a promptfoo suite: a zip of the config and its files (or the config alone),
imported by an editor with the report shown; refusals shown with nothing created."""

import io
import zipfile

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import include, path

import promptlab.urls
from evaluations.models import Evaluator
from experiments.models import Dataset, Experiment
from promptlab.accounts.models import Role
from promptlab.llm.models import ModelEndpoint
from prompts.models import Prompt
from tests.factories import MembershipFactory, ModelEndpointFactory
from tests.promptfoo.configs import KEY_ENV, copy_suite

pytestmark = pytest.mark.django_db

# The page's own URLs beside the project's, as promptlab/urls.py includes them.
urlpatterns = [*promptlab.urls.urlpatterns, path("", include("evaluations.promptfoo.urls"))]


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.fixture
def editor(client):
    membership = MembershipFactory(role=Role.EDITOR, project__slug="shop")
    client.force_login(membership.user)
    return membership


def zipped(folder) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in folder.rglob("*"):
            if file.is_file():
                archive.write(file, f"suite/{file.relative_to(folder)}")
    return buffer.getvalue()


def upload(client, filename: str, data: bytes, **fields):
    return client.post("/projects/shop/promptfoo/import/", {"file": SimpleUploadedFile(filename, data), **fields})


def test_an_editor_sees_the_form(client, editor):
    page = BeautifulSoup(client.get("/projects/shop/promptfoo/import/").content, "html.parser")

    form = page.select_one("form#promptfoo-upload-form")
    assert form["enctype"] == "multipart/form-data" and form.select_one("input[type=file][name=file]")
    assert page.select_one("#import-report") is None


def test_a_zipped_suite_is_imported_and_reported(client, editor, tmp_path, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    ModelEndpointFactory(name="mini", model="openai/gpt-4o-mini", api_base=llm_server.base_url, api_key_env=KEY_ENV)

    response = upload(client, "capitals.zip", zipped(copy_suite("capitals", tmp_path, llm_server.base_url)), name="capitals")

    assert response.status_code == 200
    page = BeautifulSoup(response.content, "html.parser")
    experiment = Experiment.objects.get(project=editor.project)
    assert page.select_one("#report-experiment")["href"] == f"/experiments/{experiment.pk}/"
    assert page.select_one("#report-dataset")["href"] == "/projects/shop/datasets/capitals/"
    assert [li.get_text(" ", strip=True) for li in page.select("#report-endpoints li")] == [
        f"mini reused: openai/gpt-4o-mini at {llm_server.base_url} for openai:chat:gpt-4o-mini"
    ]
    assert len(page.select("#report-items tbody tr")) == 5
    # each test's own assertions are its item's; capitals has no defaultTest, so no evaluator
    assert page.select_one("#report-items tbody tr .item-asserts").get_text() == "contains: France (metric geo); not-contains: Berlin (threshold 0.5, metric geo)"
    assert [row.select("td")[0].get_text(strip=True) for row in page.select("#report-evaluators tbody tr")] == list(
        Evaluator.objects.filter(project=editor.project).order_by("pk").values_list("name", flat=True)
    )
    assert [row.select("td")[0].get_text(strip=True) for row in page.select("#report-skipped tr.skipped-item")] == ["capitals.csv row 6"]
    assert "javascript" in page.select_one("#report-skipped tr.skipped-assertion").get_text()


def test_a_missing_endpoint_is_named_and_nothing_is_created(client, editor, tmp_path, llm_server):
    response = upload(client, "capitals.zip", zipped(copy_suite("capitals", tmp_path, llm_server.base_url)))

    assert response.status_code == 400
    alert = BeautifulSoup(response.content, "html.parser").select_one(".import-error").get_text(" ", strip=True)
    assert "only a superuser can add one" in alert and "openai/gpt-4o-mini" in alert
    assert (Prompt.objects.count(), ModelEndpoint.objects.count(), Dataset.objects.count()) == (0, 0, 0)


def test_a_config_alone_that_refers_to_files_asks_for_a_zip(client, editor):
    response = upload(client, "promptfooconfig.yaml", b"prompts: [file://p.txt]\nproviders: [openai:gpt-4o-mini]\n")

    assert response.status_code == 400
    alert = BeautifulSoup(response.content, "html.parser").select_one(".import-error").get_text(" ", strip=True)
    assert "promptfooconfig.yaml: prompts[0]: refers to p.txt; upload a zip" in alert


def test_other_files_are_refused_by_the_form(client, editor):
    response = upload(client, "tests.csv", b"a,b\n1,2\n")

    assert response.status_code == 400
    assert "Upload a .yaml config, or a .zip" in BeautifulSoup(response.content, "html.parser").select_one(".error").get_text()


def test_a_viewer_may_look_but_not_import(client):
    viewer = MembershipFactory(role=Role.VIEWER, project__slug="shop")
    client.force_login(viewer.user)

    page = BeautifulSoup(client.get("/projects/shop/promptfoo/import/").content, "html.parser")
    assert page.select_one("#promptfoo-read-only") and page.select_one("form#promptfoo-upload-form") is None
    assert upload(client, "s.yaml", b"prompts: [a]\n").status_code == 403


def test_someone_outside_the_project_gets_not_found(client):
    MembershipFactory(project__slug="shop")
    client.force_login(MembershipFactory().user)
    assert client.get("/projects/shop/promptfoo/import/").status_code == 404
