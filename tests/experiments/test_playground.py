"""The playground: services, the worker's side of a call, and the pages (parsed, not just status codes)."""

import threading
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection, transaction

from experiments import playground
from experiments.models import Dataset, DatasetItem, PlaygroundCall, PlaygroundCallStatus
from experiments.tasks import playground_call
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid, NotFound
from promptlab.llm import catalog, limits
from prompts import services as prompt_services
from tests.factories import DatasetFactory, MembershipFactory, ModelEndpointFactory
from tests.fake_openai import Scripted
from tests.prompts.test_pages import soup

pytestmark = pytest.mark.django_db

TEMPLATE_V1 = "Hello {{ name }}, you are {{ age }}. {{ mood }}"


@pytest.fixture
def play(endpoint, llm_server):
    """An editor's project: prompt `greet` at v1 (production) and v2 (latest), two endpoints
    on the fake server, one disabled endpoint, and a dataset with rows 1 and 2."""
    owner = MembershipFactory(role=Role.OWNER)
    second = ModelEndpointFactory(api_base=llm_server.base_url, api_key_env="PROMPTLAB_KEY_TEST_OPENAI", display_name="Second model")
    ModelEndpointFactory(display_name="Retired model", enabled=False)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="greet", message="first", template=TEMPLATE_V1, endpoint=endpoint,
        variables=[{"name": "name", "description": "who to greet"}, {"name": "age", "type": "integer", "default": 30}],
    )  # fmt: skip
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="shorter", template="Hi {{ name }} ({{ age }}) {{ mood }}")
    dataset = DatasetFactory(project=owner.project, name="greetings")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"name": f"n{n}"}) for n in (1, 2)])
    editor = MembershipFactory(project=owner.project, role=Role.EDITOR)
    return SimpleNamespace(owner=owner, editor=editor.user, project=owner.project, prompt=prompt, endpoints=[endpoint, second], dataset=dataset)


def run(play, *, variables=None, endpoints=None, version=1, params=None, capture=None):
    return playground.playground_run(
        prompt=play.prompt, actor=play.editor, version=version, variables={"name": "Ada", "mood": "Smile!"} if variables is None else variables,
        endpoints=play.endpoints if endpoints is None else endpoints, params=params,
    )  # fmt: skip


# --- Services ------------------------------------------------------------------------------


def test_run_renders_once_and_enqueues_one_call_per_endpoint_after_commit(play, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = run(play, params={"temperature": 0.7})

    calls = list(PlaygroundCall.objects.filter(batch=batch).order_by("id"))
    assert [call.endpoint for call in calls] == play.endpoints
    assert len(callbacks) == 2
    for call in calls:
        assert call.status == PlaygroundCallStatus.PENDING and call.version == 1 and call.project == play.project
        assert call.messages == [{"role": "user", "content": "Hello Ada, you are 30. Smile!"}]  # v1, the default age
        assert call.vars == {"name": "Ada", "mood": "Smile!"}  # as entered: the default is not saved as a value
        assert call.params == {"temperature": 0.7}


BAD_INPUT = {
    "a missing required variable": ({"variables": {"mood": "x"}}, "Missing variables: name"),
    "a value of the wrong type": ({"variables": {"name": "Ada", "mood": "x", "age": "old"}}, "age must be integer"),
    "variables that are not an object": ({"variables": ["Ada"]}, "must be an object"),
    "an unknown variable": ({"variables": {"name": "Ada", "mood": "x", "colour": "red"}}, "Unknown variables: colour"),
    "no endpoint": ({"endpoints": lambda play: []}, "between 1 and 4 models"),
    "the same endpoint twice": ({"endpoints": lambda play: play.endpoints[:1] * 2}, "only once"),
    "five endpoints": ({"endpoints": lambda play: [*play.endpoints, *ModelEndpointFactory.create_batch(3)]}, "between 1 and 4 models"),
    "a disabled endpoint": ({"endpoints": lambda play: [ModelEndpointFactory(enabled=False)]}, "is disabled"),
    "bad params": ({"params": {"temperature": 5}}, "temperature must be between 0 and 2"),
}


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_refused_with_the_reason_and_nothing_is_created(play, case, django_capture_on_commit_callbacks):
    kwargs, message = dict(case[0]), case[1]
    if "endpoints" in kwargs:
        kwargs["endpoints"] = kwargs["endpoints"](play)

    with django_capture_on_commit_callbacks(execute=False) as callbacks, pytest.raises(Invalid, match=message):
        run(play, **kwargs)

    assert not PlaygroundCall.objects.exists()
    assert callbacks == []


def test_a_viewer_may_not_run(play):
    viewer = MembershipFactory(project=play.project, role=Role.VIEWER).user

    with pytest.raises(Forbidden):
        playground.playground_run(prompt=play.prompt, actor=viewer, version=1, variables={"name": "A", "mood": "m"}, endpoints=play.endpoints[:1])
    assert not PlaygroundCall.objects.exists()


def test_an_unknown_version_is_not_found(play):
    with pytest.raises(NotFound, match="no version 9"):
        run(play, version=9)


def test_execute_records_output_tokens_cost_and_latency(play, llm_server):
    llm_server.latency = 0.05
    batch = run(play, endpoints=play.endpoints[:1])
    call = PlaygroundCall.objects.get(batch=batch)

    playground.playground_call_execute(call_id=call.pk)

    call.refresh_from_db()
    assert call.status == PlaygroundCallStatus.DONE and call.error == ""
    assert call.output == "fake answer to: Hello Ada, you are 30. Smile!"
    assert (call.prompt_tokens, call.completion_tokens) == (6 + 3, 9)  # the fake server counts words (+3 per message)
    input_price, output_price = catalog.prices_per_token(call.endpoint)
    assert call.cost_usd == (input_price * 9 + output_price * 9).quantize(Decimal("1e-8")) > 0
    assert call.latency_ms >= 50
    assert call.finish_reason == "stop" and call.attempts == 1 and call.finished_at is not None
    assert llm_server.requests[0]["body"]["messages"] == call.messages


def test_a_provider_error_is_recorded_with_its_message(play, llm_server):
    llm_server.script(Scripted.error(400, "This model's maximum context length is 8192 tokens.", code="context_length_exceeded"))
    call = PlaygroundCall.objects.get(batch=run(play, endpoints=play.endpoints[:1]))

    playground.playground_call_execute(call_id=call.pk)

    call.refresh_from_db()
    assert call.status == PlaygroundCallStatus.FAILED
    assert "maximum context length is 8192 tokens" in call.error
    assert call.error_kind == "context_window" and call.output == "" and call.finished_at is not None


def test_an_open_circuit_is_a_clear_failure_without_a_call(play, llm_server, settings):
    endpoint = play.endpoints[0]
    for _ in range(settings.GATEWAY_BREAKER_FAILURES):
        limits.breaker_record_failure(endpoint)
    call = PlaygroundCall.objects.get(batch=run(play, endpoints=[endpoint]))

    playground.playground_call_execute(call_id=call.pk)

    call.refresh_from_db()
    assert call.status == PlaygroundCallStatus.FAILED and call.error_kind == "circuit_open"
    assert "calls are paused" in call.error
    assert llm_server.requests == []


def test_a_duplicate_delivery_makes_exactly_one_call(play, llm_server):
    call = PlaygroundCall.objects.get(batch=run(play, endpoints=play.endpoints[:1]))

    playground_call(call.pk)  # the task, as a worker runs it
    playground_call(call.pk)  # delivered again

    assert len([r for r in llm_server.requests if r["path"] == "/v1/chat/completions"]) == 1
    call.refresh_from_db()
    assert call.status == PlaygroundCallStatus.DONE and call.output.startswith("fake answer to:")


def test_a_dead_workers_call_is_taken_over_and_its_late_answer_is_not_kept(play, llm_server):
    call = PlaygroundCall.objects.get(batch=run(play, endpoints=play.endpoints[:1]))
    PlaygroundCall.objects.filter(pk=call.pk).update(status=PlaygroundCallStatus.RUNNING, claims=1, lease_until="2999-01-01T00:00Z")

    assert playground.playground_call_execute(call_id=call.pk) is None  # a live worker holds it: nothing is called
    assert llm_server.requests == []

    PlaygroundCall.objects.filter(pk=call.pk).update(lease_until="2000-01-01T00:00Z")  # its worker died
    assert playground.playground_call_execute(call_id=call.pk).status == PlaygroundCallStatus.DONE
    call.refresh_from_db()
    assert (call.status, call.claims, call.lease_until) == (PlaygroundCallStatus.DONE, 2, None)

    dead = PlaygroundCall.objects.filter(pk=call.pk, status=PlaygroundCallStatus.RUNNING, claims=1)  # what the dead worker still holds
    assert playground._finish(call, dead, PlaygroundCallStatus.FAILED, error="late") is None
    call.refresh_from_db()
    assert call.status == PlaygroundCallStatus.DONE and call.error == ""


def test_recovery_sends_again_the_calls_a_dead_worker_or_a_lost_message_stranded(play, monkeypatch):
    sent = []
    monkeypatch.setattr(playground.dispatch, "send", lambda task, *args: sent.append((task.name, *args)))
    batch = run(play)  # two pending calls, just made: their messages may still be on their way
    lost, dead = PlaygroundCall.objects.filter(batch=batch).order_by("id")
    PlaygroundCall.objects.filter(pk=lost.pk).update(created_at="2000-01-01T00:00Z")  # pending for ages: its message was lost
    PlaygroundCall.objects.filter(pk=dead.pk).update(status=PlaygroundCallStatus.RUNNING, claims=1, lease_until="2999-01-01T00:00Z")

    assert playground.playground_calls_recover() == 1  # the live worker's call is left to it
    assert sent == [("experiments.playground_call", lost.pk)]

    PlaygroundCall.objects.filter(pk=dead.pk).update(lease_until="2000-01-01T00:00Z")  # its worker died
    PlaygroundCall.objects.filter(pk=lost.pk).update(status=PlaygroundCallStatus.DONE)
    assert playground.playground_calls_recover() == 1
    assert sent[1:] == [("experiments.playground_call", dead.pk)]


def done_call(play, **kwargs) -> PlaygroundCall:
    call = PlaygroundCall.objects.get(batch=run(play, endpoints=play.endpoints[:1], **kwargs))
    return playground.playground_call_execute(call_id=call.pk)


def test_save_as_item_appends_the_next_row_with_where_it_came_from(play):
    DatasetItem.objects.create(dataset=play.dataset, row=7, vars={})  # a gap: the next row is after the last one
    call = done_call(play)

    first = playground.playground_save_item(call=call, actor=play.editor, dataset=play.dataset)
    second = playground.playground_save_item(call=call, actor=play.editor, dataset=play.dataset)

    assert (first.row, second.row) == (8, 9)
    item = DatasetItem.objects.get(dataset=play.dataset, row=8)
    assert item.vars == {"name": "Ada", "mood": "Smile!"}
    assert item.expected == "fake answer to: Hello Ada, you are 30. Smile!"
    assert item.metadata == {"source": "playground", "prompt": "greet", "version": 1, "endpoint": call.endpoint.name,
                             "playground_call": call.pk}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_saving_waits_for_another_writer_of_the_dataset_and_takes_the_next_row(play):
    call = PlaygroundCall.objects.create(
        batch=uuid.uuid4(), project=play.project, prompt=play.prompt, version=1, endpoint=play.endpoints[0],
        status=PlaygroundCallStatus.DONE, output="kept",
    )  # fmt: skip
    locked, release, saved = threading.Event(), threading.Event(), {}

    def import_holding_the_dataset():  # as dataset_import does: lock, then add rows
        with transaction.atomic():
            Dataset.objects.select_for_update().get(pk=play.dataset.pk)
            locked.set()
            release.wait(10)
            DatasetItem.objects.create(dataset=play.dataset, row=3, vars={})
        connection.close()

    def save():
        try:
            saved["item"] = playground.playground_save_item(call=call, actor=play.editor, dataset=play.dataset)
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            saved["error"] = exc
        finally:
            connection.close()

    importer, saver = threading.Thread(target=import_holding_the_dataset), threading.Thread(target=save)
    importer.start()
    assert locked.wait(10)
    saver.start()
    saver.join(0.5)
    assert saver.is_alive()  # waiting for the import to commit, not numbering behind its back
    release.set()
    importer.join(10)
    saver.join(10)

    assert "error" not in saved, saved.get("error")
    assert saved["item"].row == 4 and saved["item"].expected == "kept"


def test_save_as_item_refuses_unanswered_calls_foreign_datasets_and_viewers(play):
    pending = PlaygroundCall.objects.filter(batch=run(play)).first()
    call = done_call(play)
    viewer = MembershipFactory(project=play.project, role=Role.VIEWER).user

    with pytest.raises(Invalid, match="Only a call that answered"):
        playground.playground_save_item(call=pending, actor=play.editor, dataset=play.dataset)
    with pytest.raises(Invalid, match="another project"):
        playground.playground_save_item(call=call, actor=None, dataset=DatasetFactory())
    with pytest.raises(Forbidden):
        playground.playground_save_item(call=call, actor=viewer, dataset=play.dataset)
    assert play.dataset.items.count() == 2


def test_variables_are_the_declared_ones_then_the_used_but_undeclared(play):
    record = playground.playground_version(prompt=play.prompt, version=None)

    variables = playground.playground_variables(record)

    assert record.version == 1  # production wins over the latest
    assert [(v.name, v.type, v.required, v.default, v.declared) for v in variables] == [
        ("name", "string", True, None, True), ("age", "integer", False, 30, True), ("mood", "string", True, None, False),
    ]  # fmt: skip


# --- Pages ---------------------------------------------------------------------------------


def url(play, suffix=""):
    return f"/projects/{play.project.slug}/playground/{suffix}"


def form_data(play, **overrides):
    data = {"prompt": play.prompt.pk, "version": 1, "var_name": "Ada", "var_age": "", "var_mood": "Smile!",
            "endpoints": [e.pk for e in play.endpoints], "temperature": "", "max_tokens": ""}  # fmt: skip
    data.update(overrides)
    return data


def test_the_page_builds_the_form_from_the_versions_variables(play, client):
    client.force_login(play.editor)

    html = client.get(url(play)).content.decode()

    page = soup(html)
    assert page.select_one('select[name="prompt"]')["hx-get"] == url(play)
    assert page.select_one('form[method="get"]')["action"] == url(play)  # the picker works without JavaScript too
    picked = page.select("option[selected]")  # the prompt, and its production version over the latest
    assert [o["value"] for o in picked] == [str(play.prompt.pk), "1"]
    assert "v1 (production)" in html and "v2 · shorter" in html
    assert page.select('textarea[name="var_name"][required]')
    assert page.select('input[name="var_age"][type="number"][placeholder="default: 30"][step="1"]')
    assert page.select('textarea[name="var_mood"][required]')
    assert not page.select('input[name="var_age"][required]')
    assert "who to greet" in html and "Used by the template but not declared." in html
    boxes = 'input[type="checkbox"][name="endpoints"]'
    assert {b["value"] for b in page.select(boxes)} == {str(e.pk) for e in play.endpoints}  # the disabled model is not offered
    assert [b["value"] for b in page.select(f"{boxes}[checked]")] == [str(play.prompt.endpoint_id)]  # the version's own model
    assert page.select(f'form#playground-run[hx-post="{url(play)}"][hx-target="#playground-results"]')
    assert page.select("button#playground-run-button")
    assert page.select("section#playground-results")
    assert "Hello {{ name }}, you are {{ age }}." in html  # the template of the version shown


def test_htmx_switches_the_version_with_the_form_fragment(play, client):
    client.force_login(play.editor)

    response = client.get(url(play), {"prompt": play.prompt.pk, "version": 2}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.startswith('<section id="playground-form">')
    assert "<html" not in html
    assert [o["value"] for o in soup(html).select("option[selected]")] == [str(play.prompt.pk), "2"]
    assert soup(html).select('input[type="hidden"][name="version"][value="2"]')


def test_run_returns_results_that_poll_until_every_call_is_in(play, client, django_capture_on_commit_callbacks):
    client.force_login(play.editor)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url(play), form_data(play, var_age="41", max_tokens="50"), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    calls = list(PlaygroundCall.objects.order_by("id"))
    assert len(calls) == len(callbacks) == 2
    assert calls[0].vars == {"name": "Ada", "age": 41, "mood": "Smile!"} and calls[0].params == {"max_tokens": 50}
    results_url = url(play, f"runs/{calls[0].batch}/")
    section = soup(html).select_one("section#playground-results")
    assert section["hx-get"] == results_url and section["hx-trigger"] == "every 1s"
    assert response["HX-Push-Url"] == f"{url(play)}?batch={calls[0].batch}"
    assert [a["data-status"] for a in soup(html).select("article")] == ["pending", "pending"]

    playground.playground_call_execute(call_id=calls[0].pk)
    html = client.get(results_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html  # one call is still pending

    playground.playground_call_execute(call_id=calls[1].pk)
    html = client.get(results_url, HTTP_HX_REQUEST="true").content.decode()
    page = soup(html)
    assert not page.select_one("section#playground-results").has_attr("hx-trigger")  # all in: the poll stops
    assert [a["data-status"] for a in page.select("article")] == ["done", "done"]
    calls[0].refresh_from_db()
    assert f'<span class="prompt-tokens">{calls[0].prompt_tokens}</span>' in html
    assert f'<span class="completion-tokens">{calls[0].completion_tokens}</span>' in html
    assert f"${calls[0].cost_usd:.8f}" in html and " ms</dd>" in html
    assert "fake answer to: Hello Ada, you are 41. Smile!" in html
    assert "Endpoint" in html and "Second model" in html
    save_forms = page.select(f'form[hx-post="{url(play, f"calls/{calls[0].pk}/save/")}"]')
    assert save_forms and page.select(f'option[value="{play.dataset.pk}"]')


def test_results_without_htmx_show_the_playground_filled_in_from_the_run(play, client):
    client.force_login(play.editor)
    client.post(url(play), form_data(play, version=2))
    batch = PlaygroundCall.objects.first().batch

    response = client.get(url(play, f"runs/{batch}/"), follow=True)

    page = soup(response.content.decode())
    assert response.redirect_chain[-1][0] == f"{url(play)}?batch={batch}"
    assert [o["value"] for o in page.select("option[selected]")] == [str(play.prompt.pk), "2"]
    assert len(page.select('input[type="checkbox"][name="endpoints"][checked]')) == 2
    assert "Ada" in response.content.decode() and len(page.select("article")) == 2


def test_the_playground_opens_at_a_version_typed_as_v2_or_a_label_and_says_unknown_for_an_unknown_cost(play, client):
    client.force_login(play.editor)
    selected = lambda query: soup(client.get(url(play, query)).content.decode()).select_one("select[name=version] option[selected]")["value"]  # noqa: E731
    assert [selected(f"?prompt={play.prompt.pk}&version={typed}") for typed in ("v2", "V1", "2", "production", "latest")] == [
        "2", "1", "2", "1", "2"
    ]
    assert client.get(url(play, f"?prompt={play.prompt.pk}&version=v0")).status_code == 404
    client.post(url(play), form_data(play))
    call = PlaygroundCall.objects.first()
    PlaygroundCall.objects.filter(pk=call.pk).update(status=PlaygroundCallStatus.DONE, output="o", prompt_tokens=3, cost_usd=None)

    page = soup(client.get(url(play, f"runs/{call.batch}/"), HTTP_HX_REQUEST="true").content.decode())

    assert page.select_one(f"#playground-call-{call.pk} .cost").get_text() == "unknown"


FORM_ERRORS = {
    "missing required": ({"var_name": ""}, "This field is required."),
    "wrong type": ({"var_age": "old"}, "Enter a whole number."),
    "no model": ({"endpoints": []}, "Pick at least one model."),
    "five models": ({"endpoints": "five"}, "Pick between 1 and 4 models."),
    "temperature": ({"temperature": "9"}, "less than or equal to 2"),
}


@pytest.mark.parametrize("case", FORM_ERRORS.values(), ids=FORM_ERRORS.keys())
def test_bad_input_re_renders_the_form_with_the_error_and_creates_nothing(play, client, case):
    overrides, message = case
    if overrides.get("endpoints") == "five":
        extra = ModelEndpointFactory.create_batch(3, api_base=play.endpoints[0].api_base, api_key_env="PROMPTLAB_KEY_TEST_OPENAI")
        overrides = {"endpoints": [e.pk for e in [*play.endpoints, *extra]]}
    client.force_login(play.editor)

    htmx = client.post(url(play), form_data(play, **overrides), HTTP_HX_REQUEST="true")
    plain = client.post(url(play), form_data(play, **overrides))

    assert htmx["HX-Retarget"] == "#playground-form" and htmx["HX-Reswap"] == "outerHTML"
    assert htmx.content.decode().startswith('<section id="playground-form">') and message in htmx.content.decode()
    assert plain.status_code == 200 and message in plain.content.decode() and "<h1>Playground</h1>" in plain.content.decode()
    assert soup(plain.content.decode()).select('textarea[name="var_mood"]')  # the form, filled in again
    assert "Smile!" in plain.content.decode()
    assert not PlaygroundCall.objects.exists()


def test_save_from_the_page_replaces_the_save_area_with_a_confirmation(play, client):
    call = done_call(play)
    client.force_login(play.editor)

    response = client.post(url(play, f"calls/{call.pk}/save/"), {"dataset": play.dataset.pk}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.startswith(f'<div id="playground-save-{call.pk}"')
    assert "Saved as row 3 of the dataset <code>greetings</code>." in html
    assert DatasetItem.objects.get(dataset=play.dataset, row=3).expected == call.output

    missing = client.post(url(play, f"calls/{call.pk}/save/"), {"dataset": "x"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Pick a dataset of this project." in missing and soup(missing).select('select[name="dataset"]')
    assert play.dataset.items.count() == 3


def test_a_viewer_sees_the_page_but_cannot_run_or_save(play, client):
    viewer = MembershipFactory(project=play.project, role=Role.VIEWER).user
    call = done_call(play)
    client.force_login(viewer)

    page = soup(client.get(url(play)).content.decode())
    results = client.get(url(play, f"runs/{call.batch}/"), HTTP_HX_REQUEST="true").content.decode()

    assert page.select('textarea[name="var_name"]') and not page.select("button#playground-run-button")
    assert page.select("p#playground-read-only")
    assert "fake answer to:" in results and "Save as dataset item" not in results
    assert client.post(url(play), form_data(play)).status_code == 403
    assert client.post(url(play, f"calls/{call.pk}/save/"), {"dataset": play.dataset.pk}).status_code == 403
    assert PlaygroundCall.objects.count() == 1 and play.dataset.items.count() == 2


def test_other_projects_slugs_prompts_runs_and_calls_are_not_found(play, client):
    call = done_call(play)
    stranger = MembershipFactory(role=Role.OWNER)
    other_prompt = prompt_services.prompt_create(
        project=stranger.project, actor=stranger.user, name="other", message="m", template="x", endpoint=play.endpoints[0]
    )

    client.force_login(stranger.user)
    assert client.get(url(play)).status_code == 404
    assert client.post(url(play), form_data(play)).status_code == 404
    theirs = f"/projects/{stranger.project.slug}/playground/"
    assert client.get(theirs).status_code == 200
    assert client.get(theirs, {"prompt": play.prompt.pk}).status_code == 404
    assert client.get(theirs, {"batch": call.batch}).status_code == 404
    assert client.get(f"{theirs}runs/{call.batch}/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.post(f"{theirs}calls/{call.pk}/save/", {"dataset": play.dataset.pk}).status_code == 404
    assert client.get(theirs, {"prompt": other_prompt.pk, "version": 7}).status_code == 404
    assert client.get(theirs, {"batch": "not-a-uuid"}).status_code == 404
    assert play.dataset.items.count() == 2


def test_a_call_no_worker_answered_stops_the_poll_and_says_so(play, client):
    batch = run(play, endpoints=play.endpoints[:1])
    PlaygroundCall.objects.update(created_at=PlaygroundCall.objects.get().created_at - playground.CALL_DEADLINE)
    client.force_login(play.editor)

    html = client.get(url(play, f"runs/{batch}/"), HTTP_HX_REQUEST="true").content.decode()

    assert "hx-trigger" not in html and "Is a Celery worker running?" in html
    assert soup(html).select('article[data-status="stale"]')


def test_the_home_page_links_each_project_to_its_playground(play, client):
    client.force_login(play.editor)

    assert soup(client.get("/").content.decode()).select(f'a[href="{url(play)}"]')


# --- N+1 guards ----------------------------------------------------------------------------


def test_the_page_and_the_results_make_as_many_queries_at_n_and_n_plus_20_rows(play, client, django_assert_num_queries):
    client.force_login(play.editor)
    batch = done_call(play).batch
    results = url(play, f"runs/{batch}/")
    page = f"{url(play)}?batch={batch}"

    def read_both():
        with django_assert_num_queries(11, info="the page"):
            assert client.get(page).status_code == 200
        with django_assert_num_queries(5, info="the results"):
            assert client.get(results, HTTP_HX_REQUEST="true").status_code == 200

    read_both()

    owner = play.owner.user
    for n in range(20):
        prompt_services.prompt_create(project=play.project, actor=owner, name=f"p{n}", message="m", template="x", endpoint=play.endpoints[0])
        prompt_services.prompt_update(prompt=play.prompt, actor=owner, message=f"v{n}", template=f"{n} {TEMPLATE_V1}")
        DatasetFactory(project=play.project)
    ModelEndpointFactory.create_batch(20)
    call = PlaygroundCall.objects.get(batch=batch)
    PlaygroundCall.objects.bulk_create(
        PlaygroundCall(batch=batch, project=play.project, prompt=play.prompt, version=1, endpoint=endpoint,
                       status=PlaygroundCallStatus.DONE, output="o", prompt_tokens=1, completion_tokens=1, cost_usd=0)
        for endpoint in ModelEndpointFactory.create_batch(20)
    )  # fmt: skip

    read_both()
    html = client.get(results, HTTP_HX_REQUEST="true").content.decode()
    assert len(soup(html).select("article")) == 21 and call.output in html
