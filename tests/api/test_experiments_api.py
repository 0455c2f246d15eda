"""Datasets, items and experiments through the API."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments import services
from experiments.models import Dataset, DatasetItem, Experiment, ExperimentStatus, Run, RunStatus
from prompts import services as prompt_services
from tests.api.conftest import error_of
from tests.factories import ModelEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(api, prompt):
    api.post("/api/v1/datasets/", {"name": "cases", "description": "Greetings"}, format="json")
    api.post("/api/v1/datasets/cases/items/", {"items": [{"vars": {"name": "Ada"}}, {"vars": {"name": "Bob"}, "expected": "Hi Bob."}]}, format="json")  # fmt: skip
    return Dataset.objects.get(name="cases")


def test_create_list_and_get_datasets(api, project):
    created = api.post("/api/v1/datasets/", {"name": "cases", "description": "Greetings"}, format="json")
    taken = api.post("/api/v1/datasets/", {"name": "cases"}, format="json")

    assert created.status_code == 201 and created.json()["items"] == 0
    assert taken.status_code == 400 and "already has a dataset" in error_of(taken)["message"]
    assert [d["name"] for d in api.get("/api/v1/datasets/").json()["results"]] == ["cases"]
    assert api.get("/api/v1/datasets/cases/").json()["description"] == "Greetings"
    assert api.get("/api/v1/datasets/nope/").status_code == 404


def test_bulk_add_appends_items_after_the_last_row(api, dataset):
    response = api.post(
        "/api/v1/datasets/cases/items/",
        {"items": [{"vars": {"name": "Cy"}, "metadata": {"source": "ci"}}, {"name": "Di", "expected": "Hi Di."}]},
        format="json",
    )

    assert response.status_code == 201 and response.json() == {"added": 2, "items": 4}
    items = api.get("/api/v1/datasets/cases/items/").json()["results"]
    assert [(i["row"], i["vars"], i["expected"]) for i in items] == [
        (1, {"name": "Ada"}, ""), (2, {"name": "Bob"}, "Hi Bob."), (3, {"name": "Cy"}, ""), (4, {"name": "Di"}, "Hi Di.")
    ]  # fmt: skip
    assert items[2]["metadata"] == {"source": "ci"}


def test_bulk_add_is_all_or_nothing_naming_the_bad_items(api, dataset):
    response = api.post(
        "/api/v1/datasets/cases/items/",
        {"items": [{"vars": {"name": "ok"}}, {"vars": "no", "expected": 3}, {"vars": {}, "extra": 1}]},
        format="json",
    )

    assert response.status_code == 400
    error = error_of(response)
    assert [p["line"] for p in error["details"]["problems"]] == [2, 2, 3]
    assert dataset.items.count() == 2


@pytest.mark.parametrize("body", [{"items": []}, {"items": "x"}, {"items": [1]}, {}])
def test_bulk_add_refuses_malformed_bodies(api, dataset, body):
    response = api.post("/api/v1/datasets/cases/items/", body, format="json")

    assert response.status_code == 400
    error_of(response)


def test_upload_csv_and_jsonl(api, dataset):
    csv_file = SimpleUploadedFile("more.csv", b"name,expected\nEve,Hi Eve.\nFay,\n", content_type="text/csv")
    jsonl = SimpleUploadedFile("x.txt", b'{"who": "Gus"}\n', content_type="text/plain")

    from_csv = api.post("/api/v1/datasets/cases/upload/", {"file": csv_file}, format="multipart")
    from_jsonl = api.post(
        "/api/v1/datasets/cases/upload/", {"file": jsonl, "format": "jsonl", "mapping": '{"who": "vars.name"}'}, format="multipart"
    )

    assert from_csv.status_code == 201 and from_csv.json() == {"added": 2, "items": 4}
    assert from_jsonl.json() == {"added": 1, "items": 5}
    assert DatasetItem.objects.get(dataset=dataset, row=5).vars == {"name": "Gus"}


def test_upload_replace_and_problems(api, dataset):
    replaced = api.post(
        "/api/v1/datasets/cases/upload/", {"file": SimpleUploadedFile("a.csv", b"name\nZed\n"), "replace": "true"}, format="multipart"
    )
    broken = api.post("/api/v1/datasets/cases/upload/", {"file": SimpleUploadedFile("b.csv", b"name,x\nA\n")}, format="multipart")
    unnamed = api.post("/api/v1/datasets/cases/upload/", {"file": SimpleUploadedFile("b.bin", b"name\nA\n")}, format="multipart")
    missing = api.post("/api/v1/datasets/cases/upload/", {}, format="multipart")

    assert replaced.json() == {"added": 1, "items": 1}
    assert broken.status_code == 400 and error_of(broken)["details"]["problems"][0]["row"] == 1
    assert unnamed.status_code == 400 and "format" in error_of(unnamed)["message"]
    assert missing.status_code == 400 and "file" in error_of(missing)["details"]


def test_an_experiment_is_created_started_and_cancelled(api, dataset, prompt, endpoint):
    created = api.post(
        "/api/v1/experiments/",
        {"name": "prod vs v2", "dataset": "cases", "repeats": 2, "budget_usd": "1.5",
         "variants": [{"name": "prod", "prompt": "greet"}, {"name": "v2", "prompt": "greet", "version": 2, "model": endpoint.name,
                       "params": {"temperature": 0}}]},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    pk = body["id"]
    assert body["status"] == "draft" and body["counts"]["total"] == 0
    assert [(v["name"], v["label"], v["version"]) for v in body["variants"]] == [("prod", "production", None), ("v2", "", 2)]

    started = api.post(f"/api/v1/experiments/{pk}/start/")
    assert started.status_code == 200
    assert started.json()["status"] == "running" and started.json()["counts"] == {
        "pending": 8, "running": 0, "done": 0, "failed": 0, "skipped": 0, "cancelled": 0, "total": 8
    }  # fmt: skip
    assert started.json()["variants"][0]["version"] == 1

    cancelled = api.post(f"/api/v1/experiments/{pk}/cancel/").json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 8
    resumed = api.post(f"/api/v1/experiments/{pk}/resume/").json()
    assert resumed["status"] == "running" and resumed["counts"]["pending"] == 8

    Run.objects.filter(experiment_id=pk, item__row=1).update(status=RunStatus.FAILED, error="boom")
    runs = api.get(f"/api/v1/experiments/{pk}/runs/?status=failed").json()
    assert runs["count"] == 4 and {r["row"] for r in runs["results"]} == {1} and runs["results"][0]["error"] == "boom"
    assert api.get(f"/api/v1/experiments/{pk}/runs/?variant=v2").json()["count"] == 4
    retried = api.post(f"/api/v1/experiments/{pk}/retry-errors/").json()
    assert retried["counts"]["failed"] == 0 and retried["counts"]["pending"] == 8
    assert [e["id"] for e in api.get("/api/v1/experiments/").json()["results"]] == [pk]


def test_an_experiment_refuses_what_cannot_run(api, dataset, prompt):
    unknown_prompt = api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "nope"}]}, format="json")
    unknown_dataset = api.post("/api/v1/experiments/", {"name": "e", "dataset": "nope", "variants": [{"prompt": "greet"}]}, format="json")
    no_variants = api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": []}, format="json")
    both = api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "greet", "label": "x", "version": 1}]}, format="json")  # fmt: skip

    assert [r.status_code for r in (unknown_prompt, unknown_dataset, no_variants, both)] == [400] * 4
    assert "nope" in error_of(unknown_prompt)["message"] and "variants" in error_of(both)["details"]
    assert not Experiment.objects.exists()


def test_starting_twice_or_with_missing_variables_is_refused(api, dataset, prompt):
    DatasetItem.objects.create(dataset=dataset, row=3, vars={"other": "x"})
    pk = api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "greet"}]}, format="json").json()["id"]

    refused = api.post(f"/api/v1/experiments/{pk}/start/")

    assert refused.status_code == 400 and "row 3" in error_of(refused)["message"]
    DatasetItem.objects.filter(row=3).delete()
    assert api.post(f"/api/v1/experiments/{pk}/start/").status_code == 200
    assert api.post(f"/api/v1/experiments/{pk}/start/").status_code == 400
    assert Experiment.objects.get(pk=pk).status == ExperimentStatus.RUNNING


def test_variants_typed_as_v3_or_3_pin_that_version_and_keep_their_names_after_the_label_moves(api, dataset, prompt, owner):
    created = api.post("/api/v1/experiments/", {"name": "typed", "dataset": "cases", "variants": [
        {"prompt": "greet"}, {"name": "label box", "prompt": "greet", "label": "v2"}, {"name": "version box", "prompt": "greet", "version": "V1"},
    ]}, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    assert [(v["label"], v["version"]) for v in created.json()["variants"]] == [("production", None), ("", 2), ("", 1)]
    pk = created.json()["id"]
    api.post(f"/api/v1/experiments/{pk}/start/")

    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)

    variants = api.get(f"/api/v1/experiments/{pk}/").json()["variants"]
    assert [(v["name"], v["display"]) for v in variants] == [
        ("greet", "greet v1 (production at start)"), ("label box", "label box: greet v2"), ("version box", "version box: greet v1"),
    ]  # fmt: skip


@pytest.mark.parametrize("variant, message", [
    ({"label": "v0"}, "'v0' is not a version"), ({"version": "-1"}, "'-1' is not a version"),
    ({"version": "production"}, 'Give a version number: 3 or "v3".'), ({"label": "v2", "version": 2}, "not both"),
])  # fmt: skip
def test_a_variant_with_a_number_that_is_no_version_is_refused_saying_why(api, dataset, prompt, variant, message):
    response = api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "greet", **variant}]}, format="json")

    assert response.status_code == 400 and message in str(error_of(response)["details"])
    assert not Experiment.objects.exists()


def test_a_model_without_a_price_costs_null_never_0_and_so_does_any_sum_with_it(api, dataset, prompt, endpoint, llm_server):
    unpriced = ModelEndpointFactory(name="unpriced", model="openai/promptlab-unpriced-model", api_base=llm_server.base_url,
                                    api_key_env=endpoint.api_key_env)  # fmt: skip
    created = api.post("/api/v1/experiments/", {"name": "costs", "dataset": "cases", "variants": [
        {"name": "priced", "prompt": "greet", "model": endpoint.name}, {"name": "unpriced", "prompt": "greet", "model": unpriced.name},
    ]}, format="json")  # fmt: skip
    pk = created.json()["id"]
    api.post(f"/api/v1/experiments/{pk}/start/")
    services.experiment_drain(experiment_id=pk)

    runs = api.get(f"/api/v1/experiments/{pk}/runs/").json()["results"]
    assert {run["variant"] for run in runs if run["cost_usd"] is None} == {"unpriced"}
    assert all(run["status"] == "done" and run["prompt_tokens"] > 0 for run in runs)
    assert all(Decimal(run["cost_usd"]) > 0 for run in runs if run["variant"] == "priced")
    assert api.get(f"/api/v1/experiments/{pk}/").json()["spent_usd"] is None
    assert api.get("/api/v1/experiments/").json()["results"][0]["spent_usd"] is None

    Run.objects.filter(experiment_id=pk, variant__name="unpriced").delete()  # only priced runs left: the sum is known again
    assert Decimal(api.get(f"/api/v1/experiments/{pk}/").json()["spent_usd"]) > 0
