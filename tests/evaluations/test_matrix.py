"""The comparison matrix page: items x variants, filters, sort, pages, ratings, diffs, export."""

import csv
import io
import json

import pytest
from bs4 import BeautifulSoup

from evaluations import services
from evaluations.models import HumanRating
from experiments.models import Run
from promptlab.accounts.models import Role
from tests.evaluations.conftest import variant_runs
from tests.factories import DatasetItemFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def page(client, experiment, **params):
    response = client.get(f"/experiments/{experiment.pk}/comparison/", params)
    return response, BeautifulSoup(response.content, "html.parser")


def rows(html) -> list[int]:
    return [int(row["data-row"]) for row in html.select("#matrix tbody tr")]


@pytest.fixture
def two(experiment, owner, client):
    """v1 passes items 0-19, v2 passes items 10-29: they disagree on 0-9 and 20-29."""
    experiment.v1 = variant_runs(experiment, "v1", [i < 20 for i in range(30)])
    experiment.v2 = variant_runs(experiment, "v2", [i >= 10 for i in range(30)], outputs=[f"refund issued for order {i}" for i in range(30)])
    client.force_login(owner.user)
    return experiment


def test_the_matrix_shows_each_item_with_a_cell_per_variant(two, client):
    response, html = page(client, two)

    assert response.status_code == 200
    assert [th.get_text() for th in html.select("#matrix thead th")] == [
        "item", f"v1: {two.v1.prompt.name} v1", f"v2: {two.v2.prompt.name} v1"  # each variant's own name, its prompt and version
    ]
    first = [item.row for item in two.items[:1]][0]
    assert rows(html)[0] == first and len(rows(html)) == 30
    cell = html.select_one(f"#cell-{two.items[0].pk}-{two.v2.pk}")
    assert "refund issued for order 0" in cell.select_one("pre.output").get_text()
    # The run's verdict by the grading rule (it needs both), then each check's score.
    assert [badge.get_text().strip() for badge in cell.select(".badge")] == ["fail 0.50", "refund 1.00", "sorry 0.00"]
    assert cell.select_one(".badge-fail") and "ms" in cell.select_one(".meta").get_text()


def test_filters_narrow_the_items(two, client):
    rows_of = lambda **params: sorted(rows(page(client, two, **params)[1]))  # noqa: E731
    all_rows = sorted(item.row for item in two.items)

    assert rows_of(failures="1") == all_rows[:10] + all_rows[20:]
    assert rows_of(disagree="1") == all_rows[:10] + all_rows[20:]
    assert rows_of(q="order 7") == [all_rows[7]]
    sorry = two.checks[1]
    assert rows_of(below=sorry.pk) == all_rows[:10] + all_rows[20:]


def test_a_filter_that_matches_nothing_shows_an_empty_state(two, client):
    response, html = page(client, two, q="no such words")

    assert response.status_code == 200 and "No items match these filters." in html.select_one("#matrix").get_text()


def test_sorting_by_score_difference_puts_the_largest_gain_first(two, client):
    _, html = page(client, two, sort="diff", a=two.v1.pk, b=two.v2.pk)

    order = rows(html)
    gains = {item.row: (1 if i >= 10 else 0) - (1 if i < 20 else 0) for i, item in enumerate(two.items)}
    assert [gains[row] for row in order] == sorted(gains.values(), reverse=True)


@pytest.mark.parametrize("params, message", [
    ({"page": "abc"}, "The page must be a positive number"),
    ({"a": "999999"}, "Unknown a"),
    ({"below": "x"}, "Unknown below"),
    ({"sort": "random"}, "Unknown sort"),
])  # fmt: skip
def test_malformed_parameters_are_a_400_page_that_names_them(two, client, params, message):
    response, html = page(client, two, **params)

    assert response.status_code == 400 and message in html.select_one("#matrix").get_text()


def test_pages_hold_fifty_items_and_a_page_past_the_end_shows_the_last(experiment, owner, client):
    experiment.items += [DatasetItemFactory(dataset=experiment.dataset) for _ in range(30)]
    variant_runs(experiment, "v1", [True] * 60)
    client.force_login(owner.user)

    assert len(rows(page(client, experiment)[1])) == 50
    _, last = page(client, experiment, page=99)
    assert len(rows(last)) == 10 and "page 2 of 2 (60 items)" in last.select_one(".page-of").get_text()


def test_htmx_gets_only_the_matrix_fragment(two, client):
    response = client.get(f"/experiments/{two.pk}/comparison/", {"failures": "1"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="matrix")

    html = BeautifulSoup(response.content, "html.parser")
    assert html.select_one("section")["id"] == "matrix" and not html.select("#stats-panel")


def test_the_matrix_reads_the_same_number_of_queries_at_any_size(experiment, owner, client, django_assert_num_queries):
    variant_runs(experiment, "v1", [True] * 30)
    variant_runs(experiment, "v2", [False] * 30)
    client.force_login(owner.user)
    page(client, experiment)  # warm the session and content types
    with django_assert_num_queries(22):
        page(client, experiment, failures="1")
    experiment.items += [DatasetItemFactory(dataset=experiment.dataset) for _ in range(20)]
    variant_runs(experiment, "v3", [True] * 50)
    with django_assert_num_queries(22):
        page(client, experiment, failures="1")


def test_rating_a_cell_updates_it_and_announces_the_change(two, client, owner):
    run = two.v2.runs.order_by("pk").first()
    viewer = MembershipFactory(project=owner.project, role=Role.VIEWER).user
    client.force_login(viewer)

    response = client.post(f"/experiments/{two.pk}/runs/{run.pk}/rating/", {"scale": "thumbs", "value": "1"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200 and response["HX-Trigger"] == "ratings-changed"
    cell = BeautifulSoup(response.content, "html.parser")
    assert cell.select_one("td")["id"] == f"cell-{run.item_id}-{two.v2.pk}"
    assert cell.select_one('button[aria-pressed="true"]')["value"] == "1" and "1 rating" in cell.get_text()
    assert HumanRating.objects.get(run=run, user=viewer).value == 1
    summary = BeautifulSoup(client.get(f"/experiments/{two.pk}/comparison/ratings/").content, "html.parser")
    assert summary.select_one('tr[data-variant="v2"] .rating-count').get_text() == "1"


def test_a_bad_rating_is_shown_in_the_cell_and_saves_nothing(two, client):
    run = two.v1.runs.order_by("pk").first()

    response = client.post(f"/experiments/{two.pk}/runs/{run.pk}/rating/", {"scale": "thumbs", "value": "7"})

    assert "not 7" in BeautifulSoup(response.content, "html.parser").select_one(".error").get_text()
    assert "HX-Trigger" not in response and not HumanRating.objects.exists()


def test_other_projects_experiments_runs_and_items_are_not_found(two, client):
    client.force_login(MembershipFactory(role=Role.OWNER).user)
    run, item = two.v1.runs.first(), two.items[0]

    for url in (f"/experiments/{two.pk}/comparison/", f"/experiments/{two.pk}/comparison/stats/", f"/experiments/{two.pk}/export.csv",
                f"/experiments/{two.pk}/items/{item.pk}/diff/?a={two.v1.pk}&b={two.v2.pk}"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.post(f"/experiments/{two.pk}/runs/{run.pk}/rating/", {"scale": "thumbs", "value": "1"}).status_code == 404


def test_the_word_diff_of_two_variants_answers(two, client):
    item = two.items[3]

    response = client.get(f"/experiments/{two.pk}/items/{item.pk}/diff/", {"a": two.v1.pk, "b": two.v2.pk})

    html = BeautifulSoup(response.content, "html.parser")
    assert {d.get_text() for d in html.select("del")} == {"v1", "answers", "item"}
    assert "refund" in {i.get_text() for i in html.select("ins")} and "order" in html.select_one("pre.diff").get_text()
    assert client.get(f"/experiments/{two.pk}/items/{item.pk}/diff/", {"a": two.v1.pk}).status_code == 400


def test_export_has_every_run_with_its_scores(two, client):
    services.rating_set(run=two.v1.runs.first(), actor=two.created_by or two.project.memberships.first().user, scale="thumbs", value=1)

    jsonl = b"".join(client.get(f"/experiments/{two.pk}/export.jsonl").streaming_content).decode().splitlines()
    text = b"".join(client.get(f"/experiments/{two.pk}/export.csv").streaming_content).decode()

    records = [json.loads(line) for line in jsonl]
    assert len(records) == 60 and records[0]["scores"]["sorry"]["passed"] is True
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 60 and json.loads(table[1]["scores"])["refund"]["status"] == "ok"
    assert client.get(f"/experiments/{two.pk}/export.xml").status_code == 404


def test_export_names_variants_as_people_read_them_and_says_unknown_for_an_unknown_cost(two, client):
    runs = list(two.v1.runs.order_by("item__row"))
    Run.objects.filter(pk=runs[0].pk).update(cost_usd=None, prompt_tokens=12)  # answered by a model without a price
    Run.objects.filter(pk=runs[1].pk).update(cost_usd=None, prompt_tokens=None, status="failed")  # no answer: nothing billed

    text = b"".join(client.get(f"/experiments/{two.pk}/export.csv").streaming_content).decode()
    jsonl = [json.loads(line) for line in b"".join(client.get(f"/experiments/{two.pk}/export.jsonl").streaming_content).decode().splitlines()]

    table = [row for row in csv.DictReader(io.StringIO(text)) if row["variant_name"] == "v1"]
    assert {row["variant"] for row in table} == {f"v1: {two.v1.prompt.name} v1"}
    assert [row["cost_usd"] for row in table[:3]] == ["unknown", "", "0.00100000"]
    first = next(record for record in jsonl if record["variant_name"] == "v1")
    assert first["cost_usd"] is None and first["cost_unknown"] is True  # JSON says null, and why
