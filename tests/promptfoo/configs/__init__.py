"""promptfoo suites written for the tests, and how the tests use them: copied to a temporary
folder with FAKE_OPENAI_BASE_URL replaced by the fake OpenAI server's URL, imported, run
in-process against that server and scored."""

import shutil
from pathlib import Path

from evaluations import services as evaluation_services
from experiments import services as experiment_services
from experiments.models import Experiment, RunStatus

HERE = Path(__file__).resolve().parent
KEY_ENV = "PROMPTLAB_KEY_TEST_OPENAI"


def copy_suite(name: str, target: Path, base_url: str) -> Path:
    """The suite `name` in `target`, pointing at the fake server."""
    folder = target / name
    shutil.copytree(HERE / name, folder, dirs_exist_ok=True)
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".py":
            path.write_text(path.read_text(encoding="utf-8").replace("FAKE_OPENAI_BASE_URL", base_url), encoding="utf-8")
    return folder


def run_and_score(experiment: Experiment, *, before_scoring=None) -> None:
    """Start the experiment, make its calls in this process, then score every run (in run
    order, so scripted judge answers are taken in a known order)."""
    experiment_services.experiment_start(experiment=experiment, actor=None)
    experiment_services.experiment_drain(experiment_id=experiment.pk, time_budget_s=60)
    if before_scoring:
        before_scoring()
    for run_id in experiment.runs.filter(status=RunStatus.DONE).order_by("pk").values_list("pk", flat=True):
        evaluation_services.score_run(run_id=run_id)
