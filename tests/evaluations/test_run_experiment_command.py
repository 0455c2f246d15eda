"""manage.py run_experiment: the calls, then the scores, then the verdict and an exit status a
CI job can gate on. With --inline everything happens in the command's process; without it a
real Celery worker makes the calls and the scores, and the command waits for both."""

import pytest
from django.core.management import CommandError, call_command

from evaluations import gates
from evaluations.models import Score, ScoreStatus
from experiments import services as experiments
from experiments.models import ExperimentStatus, RunStatus
from prompts import services as prompt_services
from tests.conftest import start_worker, stop
from tests.fake_openai import Scripted

pytestmark = pytest.mark.django_db(transaction=True)  # --inline works in a thread with its own connection


def run(*args) -> int:
    """The command's exit status (0 when it returns)."""
    try:
        call_command("run_experiment", *map(str, args))
    except SystemExit as exit_status:
        return exit_status.code
    return 0


def completions(llm_server) -> int:
    return len([request for request in llm_server.requests if request["path"].endswith("/chat/completions")])


def test_inline_makes_the_calls_scores_them_and_checks_the_pass_rates(answering, llm_server, capsys):
    experiment = answering.experiment()

    assert run(experiment.pk, "--inline", "--timeout", 120, "--fail-under", 0.9, "--variant", "v2") == 0

    experiment.refresh_from_db()
    out = capsys.readouterr().out
    assert experiment.status == ExperimentStatus.FINISHED
    assert Score.objects.filter(run__experiment=experiment, status=ScoreStatus.OK).count() == 10  # no worker scored them
    assert "10 calls" in out and "10/10" in out
    assert "  v2: answer v2: 100.0% (5/5 graded runs)" in out
    assert "  prod: answer v1 (production at start): 0.0% (0/5 graded runs)" in out
    assert "Verdicts:\n  prod: answer v1 (production at start) vs v2: answer v2: " in out
    calls = completions(llm_server)

    assert run(experiment.pk, "--fail-under", 0.9) == 1  # every variant's pass rate, this time

    err = capsys.readouterr().err
    assert "Variant 'prod' passes 0.0% of its graded runs, under --fail-under 90.0%." in err
    assert "'v2'" not in err
    assert completions(llm_server) == calls  # a finished experiment is reported, not run again


def test_a_failed_run_fails_the_command(answering, llm_server, capsys):
    experiment = answering.experiment(evaluators=())
    llm_server.script(Scripted.error(400, "bad request"))

    assert run(experiment.pk, "--inline", "--timeout", 120) == 1

    out, err = capsys.readouterr()
    assert "10 calls" in out and "10/10" in out and "failed 1" in out and "none (no graded run)" in out
    assert "1 run(s) failed" in err


def test_a_gate_experiment_that_fails_its_gate_fails_the_command(answering, llm_server, capsys):
    owner, prompt = answering.owner, answering.prompt
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)
    gates.gate_set(prompt=prompt, actor=owner.user, dataset=answering.dataset, evaluators=[answering.brief], min_pass_rate=0.9)
    experiment = gates.gate_experiment_start(prompt=prompt, version=1, actor=owner.user)

    assert run(experiment.pk, "--inline", "--timeout", 120) == 1

    out, err = capsys.readouterr()
    assert "Gate: not passed: " in out
    assert "The promotion gate did not pass this experiment's version: pass rate 0.0% is below the required 90.0%." in err


def test_without_a_worker_it_times_out_with_no_verdict(answering, llm_server):
    experiment = answering.experiment()

    with pytest.raises(CommandError) as refused:
        call_command("run_experiment", str(experiment.pk), "--timeout", "1")

    assert refused.value.returncode == 2
    assert "Timed out waiting for the calls: is a worker running" in str(refused.value)


@pytest.mark.parametrize(("args", "message"), [
    (["--variant", "v9", "--fail-under", "0.5"], "The experiment has no variant 'v9'; its variants are 'prod', 'v2'."),
    (["--variant", "v2"], "--variant says whose pass rate --fail-under checks"),
    (["--fail-under", "90"], "--fail-under is a pass rate from 0 to 1"),
])  # fmt: skip
def test_bad_arguments_have_no_verdict_and_start_nothing(answering, args, message):
    experiment = answering.experiment()

    with pytest.raises(CommandError) as refused:
        call_command("run_experiment", str(experiment.pk), *args)

    assert refused.value.returncode == 2 and message in str(refused.value)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


@pytest.mark.worker
def test_it_waits_for_a_workers_scores_not_only_its_calls(answering, llm_server, capsys):
    experiment = answering.experiment()
    experiments.experiment_start(experiment=experiment, actor=answering.owner.user)
    experiments.experiment_drain(experiment_id=experiment.pk)  # the calls; their scores are queued for a worker
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SCORING

    worker = start_worker(concurrency=2, name="run-experiment")
    try:
        status = run(experiment.pk, "--timeout", 120, "--fail-under", 0.9, "--variant", "v2")
    finally:
        stop(worker)

    out = capsys.readouterr().out
    assert status == 0
    assert "scoring " in out and "scoring 10/10 answered runs" in out
    assert "  v2: answer v2: 100.0% (5/5 graded runs)" in out
    runs = experiment.runs.filter(status=RunStatus.DONE)
    assert Score.objects.filter(run__in=runs, status=ScoreStatus.OK).count() == 10
