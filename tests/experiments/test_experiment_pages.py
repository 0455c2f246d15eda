"""The experiments list and the new-experiment form with its live forecast."""

import pytest
from bs4 import BeautifulSoup

from evaluations import services as evaluations
from experiments.models import DatasetItem, Experiment, ExperimentStatus, Run
from promptlab.accounts.models import Role
from prompts import services as prompts
from tests.factories import DatasetFactory, ExperimentFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(endpoint):
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompts.prompt_create(project=owner.project, actor=owner.user, name="faq", message="v1", template="Answer: {{ q }}", endpoint=endpoint)
    prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompts.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Reply: {{ q }}")
    dataset = DatasetFactory(project=owner.project, name="faq")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 6)])
    check = evaluations.evaluator_create(project=owner.project, actor=owner.user, name="polite", kind="icontains", config={"value": "please"})
    return owner, prompt, dataset, check


def form(shop, **extra):
    owner, prompt, dataset, check = shop
    return {"name": "v1 vs v2", "dataset": dataset.pk, "repeats": 2, "concurrency": 4, "budget_usd": "",
            "variant0_prompt": prompt.pk, "variant0_at": "production", "variant1_prompt": prompt.pk, "variant1_at": "2",
            "evaluators": [check.pk], **extra}  # fmt: skip


def test_the_forecast_follows_the_form(shop, client, llm_server):
    owner, *_ = shop
    client.force_login(owner.user)
    url = f"/projects/{owner.project.slug}/experiments/forecast/"

    html = BeautifulSoup(client.post(url, form(shop)).content, "html.parser")
    assert html.select_one("#forecast .calls").get_text() == "20"  # 5 items x 2 variants x 2 repeats
    # No run of these versions yet: each answer at gpt-4o-mini's longest (16384 tokens at 6e-7 USD), as a budget holds it
    assert html.select_one("#forecast .usd").get_text().startswith("$0.19")
    fewer = BeautifulSoup(client.post(url, form(shop, repeats=1, variant1_prompt="")).content, "html.parser")
    assert fewer.select_one("#forecast .calls").get_text() == "5"
    unknown = BeautifulSoup(client.post(url, form(shop, variant1_at="9")).content, "html.parser")
    assert "version 9" in unknown.select_one("#forecast .problem").get_text()
    assert not Experiment.objects.exists() and not llm_server.requests


def test_creating_starts_the_experiment_with_its_variants_and_evaluators(shop, client, django_capture_on_commit_callbacks):
    owner, prompt, dataset, check = shop
    client.force_login(owner.user)

    with django_capture_on_commit_callbacks() as enqueued:
        response = client.post(f"/projects/{owner.project.slug}/experiments/new/", form(shop, start="on"))

    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response.url == f"/experiments/{experiment.pk}/"
    assert experiment.status == ExperimentStatus.RUNNING and experiment.repeats == 2 and len(enqueued) == 4
    assert [(v.name, v.version) for v in experiment.variants.order_by("pk")] == [("faq production", 1), ("faq v2", 2)]
    assert list(experiment.evaluator_links.values_list("evaluator", flat=True)) == [check.pk]
    assert Run.objects.filter(experiment=experiment).count() == 20


@pytest.mark.parametrize("typed", ["v2", "V2", "2"])
def test_a_version_is_typed_with_or_without_its_v(shop, client, typed):
    owner, *_ = shop
    client.force_login(owner.user)

    response = client.post(f"/projects/{owner.project.slug}/experiments/new/", form(shop, variant1_at=typed))

    experiment = Experiment.objects.get()
    assert response.status_code == 302
    assert [(v.name, v.label, v.version) for v in experiment.variants.order_by("pk")] == [("faq production", "production", None), ("faq v2", "", 2)]


def test_a_refused_start_leaves_nothing_behind_and_says_why(shop, client):
    owner, prompt, dataset, _ = shop
    DatasetItem.objects.create(dataset=dataset, row=6, vars={"other": "x"})
    client.force_login(owner.user)

    response = client.post(f"/projects/{owner.project.slug}/experiments/new/", form(shop, start="on"))

    assert response.status_code == 400
    assert "row 6: q" in BeautifulSoup(response.content, "html.parser").select_one(".error").get_text()
    assert not Experiment.objects.exists()


@pytest.mark.parametrize("extra, message", [
    ({"variant0_params": "{not json"}, "not JSON"),
    ({"variant0_params": '{"temperature": 5}'}, "temperature must be between 0 and 2"),
    ({"variant0_prompt": ""}, "This field is required"),
    ({"variant1_at": "v0"}, "Variant 2: &#x27;v0&#x27; is not a version: versions are numbered from 1"),
])  # fmt: skip
def test_bad_input_is_shown_on_the_form(shop, client, extra, message):
    owner, *_ = shop
    client.force_login(owner.user)

    response = client.post(f"/projects/{owner.project.slug}/experiments/new/", form(shop, **extra))

    assert response.status_code == 400 and message in response.content.decode()
    assert not Experiment.objects.exists()


def test_viewers_see_experiments_but_cannot_create_them(shop, client):
    owner, *_ = shop
    viewer = MembershipFactory(project=owner.project, role=Role.VIEWER).user
    client.force_login(viewer)
    slug = owner.project.slug

    page = BeautifulSoup(client.get(f"/projects/{slug}/experiments/").content, "html.parser")
    assert page.select_one("#no-experiments") and not page.select("#new-experiment")
    assert client.get(f"/projects/{slug}/experiments/new/").status_code == 403
    assert client.post(f"/projects/{slug}/experiments/forecast/", form(shop)).status_code == 403
    client.force_login(MembershipFactory(role=Role.OWNER).user)
    assert client.get(f"/projects/{slug}/experiments/").status_code == 404


def test_the_experiment_list_reads_the_same_queries_at_any_length(shop, client, django_assert_num_queries):
    owner, prompt, dataset, _ = shop
    client.force_login(owner.user)
    url = f"/projects/{owner.project.slug}/experiments/"
    ExperimentFactory.create_batch(3, project=owner.project, dataset=dataset)
    client.get(url)
    with django_assert_num_queries(5):
        client.get(url)
    ExperimentFactory.create_batch(20, project=owner.project, dataset=dataset)
    with django_assert_num_queries(5):
        html = BeautifulSoup(client.get(url).content, "html.parser")
    assert len(html.select("#experiment-list tbody tr")) == 23
