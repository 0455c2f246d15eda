"""promptlab-eval (promptlab_client.eval) against a live server and a real Celery worker: it
creates or starts an experiment through the API, waits until its calls are made and its
scores are in, prints the verdict, and exits 0, 1 (not met) or 2 (no verdict)."""

import json
import os
import subprocess
import sys

import pytest

from experiments.models import Experiment, ExperimentStatus
from promptlab.accounts import api_keys
from promptlab_client import eval as promptlab_eval
from tests.conftest import ROOT, start_worker, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(answering, settings, monkeypatch):
    """A key of the answering project that may read and run experiments, in PROMPTLAB_API_KEY."""
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    owner = answering.owner
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="ci", scopes=["read", "run"])
    monkeypatch.setenv("PROMPTLAB_API_KEY", secret)
    return secret


@pytest.mark.worker
def test_it_creates_runs_and_gates_on_the_pass_rates(answering, key, live_server, tmp_path, capsys):
    spec = tmp_path / "experiment.json"
    spec.write_text(json.dumps({
        "name": "ci brevity", "dataset": answering.dataset.name, "evaluators": ["brief"],
        "variants": [{"name": "prod", "prompt": "answer", "label": "production"}, {"name": "v2", "prompt": "answer", "version": 2}],
    }))  # fmt: skip
    project = answering.owner.project.slug
    worker = start_worker(concurrency=2, name="promptlab-eval")
    try:
        status = promptlab_eval.main(["--url", live_server.url, "--project", project, "--create", str(spec), "--fail-under", "0.9",
                                      "--interval", "0.3", "--timeout", "120"])  # fmt: skip
    finally:
        stop(worker)

    out, err = capsys.readouterr()
    experiment = Experiment.objects.get(name="ci brevity")
    assert status == 1
    assert experiment.status == ExperimentStatus.FINISHED
    assert f"Experiment {experiment.pk} (ci brevity): {live_server.url}/experiments/{experiment.pk}/comparison/" in out
    assert "finished: 10/10 runs over (0 failed), 10/10 answered runs scored" in out
    assert "  v2: answer v2: 100.0% (5/5 graded runs)" in out
    assert "Variant 'prod' passes 0.0% of its graded runs, under --fail-under 90.0%." in err and "'v2'" not in err

    # The same experiment, from a checkout with `python -m`: it is finished, so it is only read.
    checked = subprocess.run(
        [sys.executable, "-m", "promptlab_client.eval", "--url", live_server.url, "--project", project,
         "--experiment", str(experiment.pk), "--fail-under", "0.9", "--variant", "v2"],
        cwd=ROOT, env={**os.environ, "PROMPTLAB_API_KEY": key}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Verdicts:\n  prod: answer v1 (production at start) vs v2: answer v2: " in checked.stdout


def test_without_a_worker_it_gives_up_with_no_verdict(answering, key, live_server, capsys):
    experiment = answering.experiment()

    status = promptlab_eval.main(["--url", live_server.url, "--experiment", str(experiment.pk), "--interval", "0.2", "--timeout", "1"])

    out, err = capsys.readouterr()
    assert status == 2
    assert "running: 0/10 runs over (0 failed), 0/0 answered runs scored" in out  # it started the draft
    assert f"no verdict: experiment {experiment.pk} is not finished after 1 s" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--project", "someone-else"], "404 not_found: There is no project 'someone-else'."),
    (["--fail-under", "0.9", "--variant", "v9"], "the experiment has no variant 'v9'; its variants are 'prod', 'v2'."),
    (["--variant", "v2"], "--variant says whose pass rate --fail-under checks"),
])  # fmt: skip
def test_refusals_have_no_verdict_and_start_nothing(answering, key, live_server, capsys, args, message):
    experiment = answering.experiment()

    status = promptlab_eval.main(["--url", live_server.url, "--experiment", str(experiment.pk), *args])

    assert status == 2 and message in capsys.readouterr().err
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_a_failed_gate_or_failed_runs_are_not_met(capsys):
    experiment = {"variants": [{"id": 1, "name": "baseline"}, {"id": 2, "name": "v2"}], "counts": {"failed": 2}}
    comparison = {
        "variants": [{"id": 1, "name": "baseline: p v1", "pass_rate": {"estimate": 0.95, "low": 0.8, "high": 0.99}, "passed": 19, "graded": 20},
                     {"id": 2, "name": "v2: p v2", "pass_rate": {"estimate": 0.7, "low": 0.5, "high": 0.85}, "passed": 14, "graded": 20}],
        "pairs": [{"a": "baseline: p v1", "b": "v2: p v2", "pass_verdict": "v2 passes less often than baseline (p = 0.03)."}],
        "gate": {"passed": False, "reason": "the pass rate 70% is under the gate's 90%"},
    }  # fmt: skip

    problems = promptlab_eval.verdict(experiment, comparison, fail_under=0.9, variant="baseline")

    assert problems == ["2 run(s) failed.", "The promotion gate did not pass: the pass rate 70% is under the gate's 90%."]
    out = capsys.readouterr().out
    assert "  v2: p v2: 70.0% (14/20 graded runs)" in out and "Gate: not passed: the pass rate 70% is under the gate's 90%." in out
    assert promptlab_eval.verdict({**experiment, "counts": {"failed": 0}}, {**comparison, "gate": None}, fail_under=0.9) == [
        "Variant 'v2' passes 70.0% of its graded runs, under --fail-under 90.0%."
    ]
