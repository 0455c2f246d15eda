"""promptlab grades imported promptfoo suites as promptfoo itself does, checked in the same run.

Each suite is run by the real promptfoo CLI (the version tests/promptfoo/node pins) and imported
as it is into promptlab and run there, both against the fake OpenAI server, whose answers depend
only on what is sent: both get the same outputs (checked run by run). Then, for each prompt x
provider, the tests promptfoo passes and fails are the comparison API's `passed` and `graded`,
the stats panel's "passed/graded", and the runs that the matrix's failure filter shows failing.

promptfoo's side counts the tests promptlab imports (the import skips and reports the others,
such as a test with a __prefix). haiku_rubric is left out: its llm-rubric verdicts are a judge
model's answers, which the fake server does not give.

Without tests/promptfoo/node/node_modules (`npm ci --prefix tests/promptfoo/node`, which .ci/run
does) the test is skipped, unless PROMPTLAB_REQUIRE_BROWSER is set, as in CI: then it fails.
"""

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from rest_framework.test import APIClient

from evaluations import grading
from evaluations.promptfoo.config import read_suite
from evaluations.promptfoo.files import FolderFiles
from evaluations.promptfoo.importer import promptfoo_suite_import
from experiments.models import Experiment
from promptlab.accounts.models import Role
from tests.conftest import free_port
from tests.factories import MembershipFactory
from tests.promptfoo.configs import KEY_ENV, copy_suite, run_and_score

pytestmark = pytest.mark.django_db

NODE = Path(__file__).resolve().parent / "node"
PROMPTFOO = NODE / "node_modules" / ".bin" / "promptfoo"
SUITES = ["capitals", "support_bot", "order_json", "json_modes", "exact_answers", "weighted"]
# What promptfoo passes of the suites shaped like the (passed, tests) per prompt x provider,
# so a change to the fake server's answers that empties a suite of meaning is noticed.
SHAPES = {
    "json_modes": {"json": (3, 6), "text": (1, 6)},  # is-json and not-is-json, schemas, defaultTest
    "exact_answers": {"{{question}}": (3, 5), "Q: {{question}}": (1, 5)},  # equals, not-equals, starts-with
    "weighted": {"openai:chat:gpt-4o-mini": (1, 5)},  # weights, thresholds, levenshtein scored 1 or 0
}


@pytest.fixture(scope="module")
def promptfoo():
    if not PROMPTFOO.exists():
        message = f"the parity tests run promptfoo from {NODE / 'node_modules'}: npm ci --prefix tests/promptfoo/node"
        if os.environ.get("PROMPTLAB_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return PROMPTFOO


def promptfoo_eval(folder: Path, base_url: str, home: Path) -> dict:
    """`promptfoo eval` of the suite: its JSON output. Nothing is cached, written or shared, and
    nothing leaves the machine: the environment holds no provider key or address but the fake
    server's (any model promptfoo would reach by default is the fake server too), and every
    other address goes through a proxy that is not there (promptfoo posts a "telemetry
    disabled" event even when telemetry is disabled)."""
    out, nowhere = home / "results.json", f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1", KEY_ENV: "sk-test-123",
        "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"), "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1",
        "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test-123",
        "HTTPS_PROXY": nowhere, "HTTP_PROXY": nowhere, "NO_PROXY": "127.0.0.1,localhost",
    }  # fmt: skip
    command = [str(PROMPTFOO), "eval", "-c", "promptfooconfig.yaml", "-o", str(out), "--no-cache", "--no-write", "--no-share",
               "--no-table", "--no-progress-bar"]  # fmt: skip
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 100), f"promptfoo eval exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"  # 100: a test failed
    return json.loads(out.read_text(encoding="utf-8"))["results"]


def vars_key(vars: dict) -> str:
    return json.dumps(vars, sort_keys=True)


def output_text(output) -> str:
    """promptfoo's output of a JSON-mode answer may be the parsed object."""
    return output if isinstance(output, str) else json.dumps(output)


@pytest.mark.parametrize("name", SUITES)
def test_imported_suites_are_graded_as_promptfoo_grades_them(name, promptfoo, tmp_path, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    folder = copy_suite(name, tmp_path / "suite", llm_server.base_url)
    home = tmp_path / "home"
    home.mkdir()
    theirs = promptfoo_eval(folder, llm_server.base_url, home)

    owner = MembershipFactory(role=Role.OWNER)
    report = promptfoo_suite_import(project=owner.project, actor=None, files=FolderFiles(folder))
    experiment = Experiment.objects.get(pk=report.experiment_id)
    run_and_score(experiment)

    # promptfoo lists its prompt x provider pairs provider by provider; promptlab made its
    # variants prompt by prompt (none of these suites filters prompts by provider).
    suite = read_suite(FolderFiles(folder))
    variants = list(experiment.variants.order_by("pk"))
    ours = [(prompt, provider) for prompt in range(len(suite.prompts)) for provider in range(len(suite.providers))]
    theirs_order = [(prompt, provider) for provider in range(len(suite.providers)) for prompt in range(len(suite.prompts))]
    assert len(variants) == len(ours) == len(theirs["prompts"])
    variant_of = {index: variants[ours.index(pair)] for index, pair in enumerate(theirs_order)}

    runs = {(run.variant_id, vars_key(run.item.vars)): run for run in experiment.runs.select_related("item")}
    graded = {graded.run_id: graded.grade for graded in grading.experiment_grades(experiment)}
    promptfoo_verdicts, promptlab_verdicts, not_imported = {}, {}, 0
    counts = {variant.pk: Counter() for variant in variants}  # promptfoo's passed and graded per variant
    for result in theirs["results"]:
        variant = variant_of[result["promptIdx"]]
        run = runs.get((variant.pk, vars_key(result["vars"])))
        if run is None:
            not_imported += 1
            continue
        assert output_text(result["response"]["output"]) == run.output, (variant.name, result["vars"])  # the same answers
        assert result["failureReason"] in (0, 1), f"promptfoo errored on {result['vars']}: {result.get('error')}"
        key = (variant.name, run.item.row)
        promptfoo_verdicts[key] = result["success"]
        promptlab_verdicts[key] = graded[run.pk].passed
        counts[variant.pk].update(passed=result["success"], graded=1)
    assert not_imported == len(report.skipped_items) * len(variants)
    assert promptlab_verdicts == promptfoo_verdicts  # run by run, for a readable difference

    expected = {pk: (found["passed"], found["graded"]) for pk, found in counts.items()}
    if name in SHAPES:
        labels = [prompt["label"] if len(suite.prompts) > 1 else prompt["provider"] for prompt in theirs["prompts"]]
        assert {labels[index]: expected[variant.pk] for index, variant in variant_of.items()} == SHAPES[name]

    client = APIClient()
    client.force_login(owner.user)
    # The comparison API.
    api = client.get(f"/api/v1/experiments/{experiment.pk}/comparison/").json()
    assert {v["id"]: (v["passed"], v["graded"]) for v in api["variants"]} == expected
    assert {v["id"]: v["errored"] for v in api["variants"]} == {variant.pk: 0 for variant in variants}
    # The page's numbers: the stats panel.
    stats = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/stats/").content, "html.parser")
    shown = {v.pk: stats.select_one(f'#variant-summary tr[data-variant-id="{v.pk}"] .passed-graded').get_text(strip=True) for v in variants}
    assert shown == {pk: f"{passed}/{total}" for pk, (passed, total) in expected.items()}
    # The matrix's failure filter: the items some variant fails, each failing run marked.
    matrix = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/", {"failures": "1"}).content, "html.parser")
    failing = Counter()
    for variant in variants:
        for cell in matrix.select(f'#matrix td[id^="cell-"][id$="-{variant.pk}"]'):
            verdicts = [run.select_one(".badges .badge") for run in cell.select(".run")]
            failing[variant.pk] += sum("badge-fail" in badge["class"] for badge in verdicts if badge is not None)
    assert {pk: failing[pk] for pk in expected} == {pk: total - passed for pk, (passed, total) in expected.items()}
    rows = sorted(int(tr["data-row"]) for tr in matrix.select("#matrix tbody tr[data-row]"))
    assert rows == sorted({row for (_, row), passed in promptfoo_verdicts.items() if not passed})
