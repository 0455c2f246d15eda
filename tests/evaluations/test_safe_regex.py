"""Users' regular expressions are searched with a timeout: a catastrophic pattern errors its
score once, is never retried, and leaves the worker free for the next task."""

import time

import pytest

from evaluations import services, tasks
from evaluations.models import Evaluator, Score, ScoreStatus
from experiments import extensions
from experiments import services as experiment_services
from experiments.models import DatasetItem, ExperimentStatus
from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from promptlab.patterns import PatternTimeout, compile_user_pattern
from prompts import services as prompt_services
from tests.conftest import start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory, RunFactory

CATASTROPHIC = "(a+)+$"
LONG_OUTPUT = "a" * 50_000 + "b"  # (a+)+ tries every way to split the a's before giving up on the b
TIMEOUT = 0.25


@pytest.fixture
def owner(settings):
    settings.USER_REGEX_TIMEOUT_SECONDS = TIMEOUT
    return MembershipFactory(role=Role.OWNER)


def regex_evaluator(owner, name="shape", **config):
    return services.evaluator_create(project=owner.project, actor=owner.user, name=name, kind="regex", config=config)


def retries_asked(monkeypatch) -> list:
    """Every retry the scoring task asks Celery for."""
    asked = []
    real_retry = tasks.score_run.retry
    monkeypatch.setattr(tasks.score_run, "retry", lambda *args, **kwargs: asked.append(kwargs) or real_retry(*args, **kwargs))
    return asked


def assert_timed_out(score: Score) -> None:
    assert (score.status, score.error_kind, score.retryable, score.attempts) == (ScoreStatus.ERRORED, "regex_timeout", False, 1)
    assert score.reason.startswith(f"The pattern {CATASTROPHIC!r} took longer than {TIMEOUT:g}s on this output; simplify it")


# --- A pattern that runs too long ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["evaluator value", "item expected output", "item assertion"])
def test_a_catastrophic_pattern_errors_its_score_once_and_is_not_retried(owner, monkeypatch, source):
    run = RunFactory(experiment__project=owner.project, output=LONG_OUTPUT,
                     item__expected=CATASTROPHIC if source == "item expected output" else "")  # fmt: skip
    if source == "item assertion":
        run.item.assertions = extensions.item_assertions_normalize(
            project=owner.project, assertions=[{"kind": "regex", "config": {"value": CATASTROPHIC}}], where="test"
        )
        run.item.save()
        evaluators = []
    else:
        evaluators = [regex_evaluator(owner, **({"value": CATASTROPHIC} if source == "evaluator value" else {}))]
    ends_with_b = regex_evaluator(owner, name="ends-with-b", value="b$")
    services.experiment_evaluators_set(experiment=run.experiment, actor=owner.user, evaluators=[*evaluators, ends_with_b])
    asked = retries_asked(monkeypatch)

    result = tasks.score_run.apply(args=[run.pk])
    services.score_run(run_id=run.pk)  # scoring again leaves the errored score alone

    assert result.successful() and asked == []
    (timed_out,) = Score.objects.filter(run=run).exclude(evaluator=ends_with_b)
    assert_timed_out(timed_out)
    after = Score.objects.get(run=run, evaluator=ends_with_b)  # the run's next evaluator is still scored
    assert (after.status, after.passed) == (ScoreStatus.OK, True)


def test_the_search_stops_at_the_timeout_setting(settings):
    settings.USER_REGEX_TIMEOUT_SECONDS = TIMEOUT
    pattern = compile_user_pattern(r"(a+)+\Z", shown=CATASTROPHIC)

    with pytest.raises(PatternTimeout) as caught:
        pattern.search(LONG_OUTPUT)

    assert caught.value.code == "regex_timeout" and f"{CATASTROPHIC!r} took longer than {TIMEOUT:g}s" in caught.value.message
    assert pattern.search("a" * 20 + "b") is None and pattern.search("a" * 50_000) is not None  # short or matching: answered


# --- Syntax, checked on save -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pattern_with_bad_syntax_is_refused_on_save_naming_it(owner):
    with pytest.raises(Invalid) as caught:
        regex_evaluator(owner, value="(a+")
    assert caught.value.message.endswith("Invalid regular expression '(a+': missing ), unterminated subpattern at position 0")
    assert not Evaluator.objects.exists()

    with pytest.raises(Invalid, match=r"^row 2: assert\[0\]: Invalid regular expression '\[a-'"):
        extensions.item_assertions_normalize(project=owner.project, assertions=[{"kind": "regex", "config": {"value": "[a-"}}], where="row 2")  # fmt: skip


@pytest.mark.parametrize("pattern", [r"\p{L}", "(?|a|b)", r"\K", "(?<=a+)b"])
def test_the_syntax_is_pythons_re_where_the_regex_module_would_accept_more(pattern):
    with pytest.raises(Invalid) as caught:
        compile_user_pattern(pattern)
    assert caught.value.message.startswith(f"Invalid regular expression {pattern!r}: ")


# --- Normal patterns behave as before --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "output", "passes"),
    [
        ({"value": r"\d{3}-\d{4}"}, "call 555-1234 now", True),
        ({"value": r"\d{3}-\d{4}"}, "call me", False),
        ({"value": r"^\d+$"}, "42\n", False),  # $ only at the very end, as in JavaScript
        ({"value": r"^\d+$", "flags": "m"}, "x\n42\n", True),
        ({"value": r"(?<word>\w+) \k<word>"}, "bye bye", True),
        ({"value": "hello", "flags": "i"}, "HELLO", True),
        ({"value": r"(a+)+$"}, "a" * 50_000, True),  # a catastrophic pattern on text it matches is answered
    ],
)
def test_ordinary_patterns_pass_and_fail_as_before(owner, config, output, passes):
    run = RunFactory(experiment__project=owner.project, output=output)
    evaluator = regex_evaluator(owner, **config)
    services.experiment_evaluators_set(experiment=run.experiment, actor=owner.user, evaluators=[evaluator])

    services.score_run(run_id=run.pk)

    score = Score.objects.get(run=run, evaluator=evaluator)
    assert (score.status, score.passed) == (ScoreStatus.OK, passes), score.reason


# --- On a real worker ------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_serving_after_patterns_time_out(endpoint, llm_server):
    """One worker process scores three runs that each time out: each scoring task ends and the
    worker takes the next one, so the experiment finishes."""
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(project=owner.project, actor=owner.user, name="echo", message="v1", template="{{ q }}", endpoint=endpoint)  # fmt: skip
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"{LONG_OUTPUT}{n}"}) for n in range(1, 4)])
    experiment = experiment_services.experiment_create(
        project=owner.project, actor=owner.user, name="catastrophic", dataset=dataset, variants=[{"name": "a", "prompt": prompt, "version": 1}],
    )  # fmt: skip
    catastrophic = regex_evaluator(owner, value=CATASTROPHIC)
    answered = services.evaluator_create(project=owner.project, actor=owner.user, name="answered", kind="starts_with", config={"value": "fake answer to:"})  # fmt: skip
    services.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=[catastrophic, answered])

    worker = start_worker(concurrency=1, name="safe-regex")
    try:
        experiment_services.experiment_start(experiment=experiment, actor=owner.user)
        deadline = time.monotonic() + 120  # a hang guard only
        while experiment.status != ExperimentStatus.FINISHED:
            assert time.monotonic() < deadline, f"scores after 120s: {list(Score.objects.values_list('status', 'reason'))}"
            time.sleep(0.3)
            experiment.refresh_from_db()
    finally:
        stop(worker)

    timed_out = Score.objects.filter(evaluator=catastrophic)
    assert timed_out.count() == 3
    for score in timed_out:
        assert (score.status, score.error_kind, score.retryable, score.attempts) == (ScoreStatus.ERRORED, "regex_timeout", False, 1)
        assert score.reason.startswith(f"The pattern {CATASTROPHIC!r} took longer than")
    assert list(Score.objects.filter(evaluator=answered).values_list("status", "passed")) == [(ScoreStatus.OK, True)] * 3
