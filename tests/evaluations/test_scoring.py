"""Scoring runs: judges and embeddings over real HTTP to the fake server, idempotence per
evaluator version, transient failures recorded then retried, re-scoring without model calls."""

import json

import pytest

from evaluations import comparison, selectors, services, tasks
from evaluations.models import Evaluator, Score, ScoreStatus
from experiments.models import Run
from experiments.signals import run_done
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.factories import ExperimentFactory, MembershipFactory, RunFactory
from tests.fake_openai import Scripted, embedding

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def eager():
    """Tasks run in this process as they are enqueued (after commit), retries included."""
    from promptlab.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


def chat_calls(server) -> list[dict]:
    return [request["body"] for request in server.requests if request["path"].endswith("/chat/completions")]


def attach(run, *evaluators):
    services.experiment_evaluators_set(experiment=run.experiment, actor=None, evaluators=list(evaluators))


def check_on(run, name):
    """The experiment comparison's numbers of the evaluator `name` on the run's variant."""
    (check,) = [check for check in comparison.experiment_comparison(experiment=run.experiment).checks if check.name == name]
    return next(variant for variant in check.variants if variant.variant.id == run.variant_id)


@pytest.fixture
def judge(owner, endpoint):
    prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="rubric", message="v1", endpoint=endpoint,
        template="Grade the answer from 1 to 5.\nQuestion: {{ input }}\nAnswer: {{ output }}\nExpected: {{ expected }}",
    )  # fmt: skip
    return services.evaluator_create(project=owner.project, actor=owner.user, name="judge", kind="llm_judge", config={"rubric": "rubric"})


@pytest.fixture
def judged_run(owner, judge):
    run = RunFactory(
        experiment__project=owner.project, output="It is 42.", item__expected="42",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is six times seven?"}],
    )  # fmt: skip
    attach(run, judge)
    return run


# --- LLM judge -------------------------------------------------------------------------------------


def test_a_judge_grades_with_the_rubric_and_the_score_is_put_on_0_to_1(judged_run, judge, llm_server):
    llm_server.script(Scripted.content(json.dumps({"score": 4, "reasoning": "Right, if terse."})))

    outcome = services.score_run(run_id=judged_run.pk)

    score = Score.objects.get(run=judged_run, evaluator=judge)
    assert (outcome.ok, outcome.errored, outcome.retry_ids) == (1, 0, ())
    assert (score.status, score.value, score.passed, score.evaluator_version) == (ScoreStatus.OK, 0.75, True, 1)
    assert score.reason == "4 of 1 to 5: Right, if terse." and score.latency_ms > 0
    (body,) = chat_calls(llm_server)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["score", "reasoning"]
    sent = body["messages"][-1]["content"]
    assert "Question: What is six times seven?\nAnswer: It is 42.\nExpected: 42" in sent


def test_scoring_twice_makes_one_score_and_one_judge_call(judged_run, judge, llm_server):
    llm_server.script(Scripted.content(json.dumps({"score": 5, "reasoning": "Exact."})))

    tasks.score_run.apply(args=[judged_run.pk])
    tasks.score_run.apply(args=[judged_run.pk])
    services.score_run(run_id=judged_run.pk)

    assert Score.objects.filter(run=judged_run).count() == 1
    assert len(chat_calls(llm_server)) == 1
    assert Score.objects.get().value == 1.0


@pytest.mark.parametrize(
    "answer",
    ['I would give it a 4.', json.dumps({"score": 4}), json.dumps({"score": 9, "reasoning": "Great!"})],
    ids=["prose", "no-reasoning", "out-of-scale"],
)
def test_an_unusable_judge_answer_is_an_errored_score_never_a_zero(judged_run, judge, llm_server, answer):
    llm_server.script(Scripted.content(answer))

    outcome = services.score_run(run_id=judged_run.pk)

    score = Score.objects.get()
    assert (score.status, score.value, score.passed, score.retryable) == (ScoreStatus.ERRORED, None, None, False)
    assert score.error_kind == "invalid_output" and outcome.retry_ids == ()
    summary = check_on(judged_run, "judge").summary
    assert (summary.graded, summary.passed, summary.errored, summary.mean_score) == (0, 0, 1, None)
    services.score_run(run_id=judged_run.pk)  # a permanent error is kept, not asked again
    assert len(chat_calls(llm_server)) == 1


def test_errored_scores_are_counted_apart_from_failures_in_aggregates(owner, judge, llm_server):
    experiment = ExperimentFactory(project=owner.project)
    runs = RunFactory.create_batch(3, experiment=experiment, variant=RunFactory(experiment=experiment).variant)
    attach(runs[0], judge)
    llm_server.script(
        Scripted.content(json.dumps({"score": 5, "reasoning": "good"})),
        Scripted.content(json.dumps({"score": 1, "reasoning": "bad"})),
        Scripted.content("unparsable"),
    )
    for run in runs:
        services.score_run(run_id=run.pk)

    judged = check_on(runs[0], "judge")
    summary = judged.summary
    failed = summary.graded - summary.passed
    assert (summary.graded, summary.passed, failed, summary.errored, summary.mean_score.estimate) == (2, 1, 1, 1, 0.5)
    assert judged.pending == 1  # the variant's first run, never scored here
    rows = selectors.score_list(experiment=experiment)
    assert sorted((r["status"], r["value"], r["passed"]) for r in rows) == [
        (ScoreStatus.ERRORED, None, None), (ScoreStatus.OK, 0.0, False), (ScoreStatus.OK, 1.0, True),
    ]  # fmt: skip


def test_a_judge_that_keeps_failing_transiently_is_recorded_errored_with_the_reason(judged_run, judge, endpoint, llm_server):
    endpoint.max_retries = 1
    endpoint.save()
    llm_server.script(Scripted.error(500, "upstream melted"), Scripted.error(500, "upstream melted"))

    outcome = services.score_run(run_id=judged_run.pk)

    score = Score.objects.get()
    assert (score.status, score.error_kind, score.retryable, score.value) == (ScoreStatus.ERRORED, "server_error", True, None)
    assert "upstream melted" in score.reason
    assert outcome.retry_ids == (judge.pk,)
    assert len(chat_calls(llm_server)) == 2  # the gateway's own retry, nothing more here

    llm_server.script(Scripted.content(json.dumps({"score": 3, "reasoning": "ok"})))
    services.score_run(run_id=judged_run.pk)
    score.refresh_from_db()
    assert (score.status, score.value, score.attempts, Score.objects.count()) == (ScoreStatus.OK, 0.5, 2, 1)


def retry_countdowns(monkeypatch) -> list:
    """The countdown of each retry the scoring task asks Celery for (run eagerly, a retry runs at once)."""
    countdowns = []
    real_retry = tasks.score_run.retry

    def retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(tasks.score_run, "retry", retry)
    return countdowns


def test_the_scoring_task_retries_a_transient_failure_later(judged_run, judge, endpoint, llm_server, monkeypatch):
    endpoint.max_retries = 0
    endpoint.save()
    countdowns = retry_countdowns(monkeypatch)
    llm_server.script(Scripted.error(503, "busy"), Scripted.error(429, "slow down"), Scripted.content(json.dumps({"score": 5, "reasoning": "fine"})))

    tasks.score_run.apply(args=[judged_run.pk])

    score = Score.objects.get()
    assert (score.status, score.value, score.attempts) == (ScoreStatus.OK, 1.0, 3)
    assert countdowns == [30, 60]  # doubling
    assert len(chat_calls(llm_server)) == 3


def test_retries_stop_after_the_limit_and_the_score_stays_errored(judged_run, judge, endpoint, llm_server, settings, monkeypatch):
    endpoint.max_retries = 0
    endpoint.save()
    settings.GATEWAY_BREAKER_FAILURES = 100
    countdowns = retry_countdowns(monkeypatch)
    llm_server.script(*[Scripted.error(500, "down")] * (tasks.MAX_RETRIES + 1))

    result = tasks.score_run.apply(args=[judged_run.pk])

    score = Score.objects.get()
    assert (score.status, score.retryable, score.attempts) == (ScoreStatus.ERRORED, True, tasks.MAX_RETRIES + 1)
    assert len(chat_calls(llm_server)) == tasks.MAX_RETRIES + 1
    assert countdowns == [30, 60, 120, 240, 480, 600]  # doubling, capped; the last is refused: no retries are left
    assert isinstance(result.result, tasks.ScoresToRetry)


def test_a_retry_waits_at_least_what_the_provider_asks_and_at_most_ten_minutes(judged_run, judge, endpoint, llm_server, settings, monkeypatch):
    endpoint.max_retries = 0
    endpoint.save()
    settings.GATEWAY_BREAKER_FAILURES = 100
    countdowns = retry_countdowns(monkeypatch)
    llm_server.script(
        Scripted.error(429, "slow down", headers={"Retry-After": "90"}), Scripted.error(429, "slower", headers={"Retry-After": "5000"}),
        Scripted.error(429, "a little", headers={"Retry-After": "1"}), Scripted.content(json.dumps({"score": 5, "reasoning": "fine"})),
    )  # fmt: skip

    tasks.score_run.apply(args=[judged_run.pk])

    assert countdowns == [90, 600, 120]  # 90 over the backoff's 30; capped; the backoff's 120 over 1
    assert Score.objects.get().status == ScoreStatus.OK


def test_a_score_held_by_another_task_is_left_to_it_and_checked_again_later(judged_run, judge, llm_server):
    Score.objects.create(run=judged_run, evaluator=judge, evaluator_version=1, status=ScoreStatus.PENDING,
                         attempts=1, lease_until="2999-01-01T00:00Z")  # fmt: skip
    outcome = services.score_run(run_id=judged_run.pk)
    assert outcome.retry_ids == (judge.pk,) and chat_calls(llm_server) == []

    Score.objects.update(lease_until="2000-01-01T00:00Z")  # its worker died
    llm_server.script(Scripted.content(json.dumps({"score": 2, "reasoning": "meh"})))
    services.score_run(run_id=judged_run.pk)
    assert Score.objects.get().status == ScoreStatus.OK


def test_only_done_runs_are_scored(judged_run, llm_server):
    Run.objects.filter(pk=judged_run.pk).update(status="failed")
    assert services.score_run(run_id=judged_run.pk) == services.ScoreOutcome()
    assert not Score.objects.exists()


# --- Embedding similarity -----------------------------------------------------------------------


def test_embedding_similarity_is_the_cosine_of_the_endpoints_embeddings(owner, endpoint, llm_server):
    evaluator = services.evaluator_create(
        project=owner.project, actor=None, name="close", kind="embedding_similarity", config={"endpoint": endpoint.name}
    )
    same = RunFactory(experiment__project=owner.project, output="Paris", item__expected="Paris")
    other = RunFactory(experiment=same.experiment, variant=same.variant, output="The capital is Paris.", item__expected="Lyon")
    attach(same, evaluator)

    services.score_run(run_id=same.pk)
    services.score_run(run_id=other.pk)

    assert Score.objects.get(run=same).value == pytest.approx(1.0) and Score.objects.get(run=same).passed
    a, b = embedding("The capital is Paris."), embedding("Lyon")
    cosine = sum(x * y for x, y in zip(a, b))
    scored = Score.objects.get(run=other)
    assert scored.value == pytest.approx(min(1, max(0, cosine))) and scored.passed is (cosine >= 0.75)
    assert f"{cosine:.3f}" in scored.reason
    bodies = [request["body"] for request in llm_server.requests]
    assert [request["path"] for request in llm_server.requests] == ["/v1/embeddings"] * 2
    assert bodies[1]["input"] == ["The capital is Paris.", "Lyon"]


# --- Re-scoring -------------------------------------------------------------------------------------


def test_a_changed_evaluator_rescores_as_a_new_version_without_calling_the_runs_models(owner, llm_server, eager, django_capture_on_commit_callbacks):  # fmt: skip
    experiment = ExperimentFactory(project=owner.project)
    first = RunFactory(experiment=experiment, output="The answer is 42.")
    runs = [first, *RunFactory.create_batch(4, experiment=experiment, variant=first.variant, output="No idea.")]
    evaluator = services.evaluator_create(project=owner.project, actor=owner.user, name="answer", kind="contains", config={"value": "42"})
    attach(first, evaluator)
    for run in runs:
        services.score_run(run_id=run.pk)
    evaluator = services.evaluator_update(evaluator=evaluator, actor=owner.user, message="Say it", config={"value": "answer is"})
    extra = services.evaluator_create(project=owner.project, actor=owner.user, name="short", kind="word_count", config={"max": 3})
    before = len(llm_server.requests)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.experiment_rescore(experiment=experiment, actor=owner.user, evaluators=[evaluator, extra]) == 5

    assert len(llm_server.requests) == before == 0  # no model was called for the runs
    assert Score.objects.filter(evaluator=evaluator, evaluator_version=1).count() == 5  # the old version's scores are kept
    assert Score.objects.filter(evaluator=evaluator, evaluator_version=2).count() == 5
    rows = selectors.score_list(experiment=experiment)
    assert {(row["evaluator_name"], row["evaluator_version"]) for row in rows} == {("answer", 2), ("short", 1)}
    assert sorted(row["passed"] for row in rows if row["evaluator_name"] == "short") == [False, True, True, True, True]
    every = selectors.score_list(experiment=experiment, evaluator="answer", versions="all")
    v1 = [(row["status"], row["passed"]) for row in every if row["evaluator_version"] == 1]
    assert sorted(v1) == [(ScoreStatus.OK, False)] * 4 + [(ScoreStatus.OK, True)]

    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_rescore(experiment=experiment, actor=owner.user)
    assert Score.objects.count() == 15  # nothing new: every version already has its scores


def test_adding_an_evaluator_to_a_finished_experiment_scores_its_done_runs(owner, eager, django_capture_on_commit_callbacks):
    run = RunFactory(experiment__project=owner.project, output="yes")
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="yes", kind="equals", config={"value": "yes"})
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_evaluators_set(experiment=run.experiment, actor=owner.user, evaluators=[evaluator])
    assert Score.objects.get().passed is True


def test_rescoring_retries_errored_scores(judged_run, judge, llm_server, eager, django_capture_on_commit_callbacks, owner):
    llm_server.script(Scripted.content("not json"))
    services.score_run(run_id=judged_run.pk)
    llm_server.script(Scripted.content(json.dumps({"score": 5, "reasoning": "now parsable"})))
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_rescore(experiment=judged_run.experiment, actor=owner.user)
    score = Score.objects.get()
    assert (score.status, score.value, score.attempts) == (ScoreStatus.OK, 1.0, 2)


def test_a_finished_run_is_scored_when_its_experiment_has_evaluators(owner, eager, monkeypatch):
    run = RunFactory(experiment__project=owner.project, output="yes")
    unscored = RunFactory(experiment__project=owner.project, output="yes")
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="yes", kind="equals", config={"value": "yes"})
    attach(run, evaluator)
    enqueued = []
    real_send = tasks.score_run.apply_async
    monkeypatch.setattr(tasks.score_run, "apply_async", lambda args, **options: enqueued.append(tuple(args)) or real_send(args, **options))

    run_done.send(sender=Run, run_id=run.pk)
    run_done.send(sender=Run, run_id=unscored.pk)  # no evaluators: no task at all

    assert enqueued == [(run.pk,)]
    assert Score.objects.get().run == run


def test_disabled_evaluators_do_not_score(owner):
    run = RunFactory(experiment__project=owner.project, output="yes")
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="yes", kind="equals", config={"value": "yes"}, enabled=False)  # fmt: skip
    attach(run, evaluator)
    services.score_run(run_id=run.pk)
    assert not Score.objects.exists()


# --- Selectors -------------------------------------------------------------------------------------


def test_score_and_rating_selectors_make_the_same_queries_at_any_size(owner, django_assert_num_queries):
    from evaluations.models import HumanRating

    experiment = ExperimentFactory(project=owner.project)
    first = RunFactory(experiment=experiment)
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="c", kind="contains", config={"value": "42"})
    attach(first, evaluator)

    def grow(n):
        for run in RunFactory.create_batch(n, experiment=experiment, variant=first.variant):
            services.score_run(run_id=run.pk)
            HumanRating.objects.create(run=run, user=owner.user, scale="five", value=4)

    for size in (3, 23):
        grow(size - Run.objects.filter(experiment=experiment).count() + 1)
        with django_assert_num_queries(2):
            rows = list(selectors.score_list(experiment=experiment))
            ratings = selectors.experiment_ratings(experiment=experiment)
        assert len(rows) == len(ratings) == size


def test_score_list_rows_are_plain_rows_per_item_variant_and_evaluator(owner):
    run = RunFactory(experiment__project=owner.project, output="The answer is 42.", item__row=7)
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="c", kind="contains", config={"value": "42"}, weight=2)
    attach(run, evaluator)
    services.score_run(run_id=run.pk)

    (row,) = selectors.score_list(experiment=run.experiment)
    assert row == {
        "run_id": run.pk, "status": "ok", "value": 1.0, "passed": True, "reason": "The output contains '42'.", "error_kind": "",
        "cost_usd": None, "evaluator_version": 1, "updated_at": Score.objects.get().updated_at, "variant": run.variant.name,
        "row": 7, "repeat": 1, "evaluator_name": "c", "current_version": 1,
    }  # fmt: skip
    assert Evaluator.objects.get().scores.count() == 1


def test_a_chunk_that_runs_out_of_time_continues_in_a_new_task(owner, eager):
    run = RunFactory(experiment__project=owner.project, output="yes")
    runs = [run, *RunFactory.create_batch(2, experiment=run.experiment, variant=run.variant, output="no")]
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="yes", kind="equals", config={"value": "yes"})
    attach(run, evaluator)

    services.score_runs(run_ids=[r.pk for r in runs], time_budget_s=-1)  # out of time before the first run

    assert sorted(Score.objects.values_list("passed", flat=True)) == [False, False, True]


def test_a_rubric_that_declares_a_variable_it_does_not_print_still_gets_it(owner, endpoint, llm_server):
    prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="strict", message="v1", endpoint=endpoint, template="Grade: {{ output }}",
        variables=[{"name": "expected", "type": "string", "required": True}],
    )  # fmt: skip
    evaluator = services.evaluator_create(project=owner.project, actor=None, name="judge", kind="llm_judge", config={"rubric": "strict"})
    run = RunFactory(experiment__project=owner.project, output="yes", item__expected="yes")
    attach(run, evaluator)
    llm_server.script(Scripted.content(json.dumps({"score": 5, "reasoning": "same"})))

    services.score_run(run_id=run.pk)

    assert Score.objects.get().status == ScoreStatus.OK
