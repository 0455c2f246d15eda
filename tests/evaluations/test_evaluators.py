"""Evaluators through the services and the admin: validation, versions, permissions, plugins."""

import json
import textwrap

import pytest

from evaluations import kinds, services
from evaluations.models import Evaluator, Score, ScoreStatus
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from prompts import services as prompt_services
from tests.factories import MembershipFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor():
    return MembershipFactory(role=Role.EDITOR)


def test_an_invalid_regex_is_refused_with_the_parsers_message_and_nothing_is_saved(editor):
    with pytest.raises(Invalid) as caught:
        services.evaluator_create(project=editor.project, actor=editor.user, name="digits", kind="regex", config={"value": r"(\d+"})
    assert "missing ), unterminated subpattern at position 0" in caught.value.message
    assert "missing )" in caught.value.details["config"]
    assert not Evaluator.objects.exists() and not Evaluator.history.exists()


def test_an_invalid_json_schema_is_refused_with_the_validators_message_and_nothing_is_saved(editor):
    with pytest.raises(Invalid) as caught:
        services.evaluator_create(
            project=editor.project, actor=editor.user, name="shape", kind="json_schema",
            config={"schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": "zero"}}}},
        )  # fmt: skip
    assert caught.value.details["config"] == "Invalid JSON schema at properties/n/minimum: 'zero' is not of type 'number'"
    assert not Evaluator.objects.exists() and not Evaluator.history.exists()


def test_an_update_with_an_invalid_config_changes_nothing(editor):
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="digits", kind="regex", config={"value": r"\d+"})
    with pytest.raises(Invalid, match="unterminated character set"):
        services.evaluator_update(evaluator=evaluator, actor=editor.user, message="broken", config={"value": "[0-9"})
    evaluator.refresh_from_db()
    assert evaluator.config == {"value": r"\d+"} and evaluator.version == 1 and evaluator.history.count() == 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "telepathy"}, "kind"),
        ({"weight": -1}, "weight"),
        ({"threshold": 1.5}, "threshold"),
        ({"weight": float("nan")}, "weight"),
    ],
)
def test_each_problem_is_named_on_its_field(editor, fields, problem):
    with pytest.raises(Invalid) as caught:
        services.evaluator_create(project=editor.project, actor=editor.user, name="x", **{"kind": "contains", "config": {"value": "a"}, **fields})
    assert problem in caught.value.details


def test_unknown_kind_lists_the_kinds_there_are(editor):
    with pytest.raises(Invalid, match="Unknown evaluator kind 'telepathy': choose one of .*contains.*llm_judge"):
        services.evaluator_create(project=editor.project, actor=editor.user, name="x", kind="telepathy")


def test_names_are_slugs_unique_per_project(editor):
    services.evaluator_create(project=editor.project, actor=editor.user, name="has-answer", kind="contains", config={"value": "a"})
    with pytest.raises(Invalid, match="already has an evaluator named 'has-answer'"):
        services.evaluator_create(project=editor.project, actor=editor.user, name="has-answer", kind="contains", config={"value": "b"})
    with pytest.raises(Invalid, match="not a valid evaluator name"):
        services.evaluator_create(project=editor.project, actor=editor.user, name="has answer", kind="contains", config={"value": "b"})


def test_a_change_to_what_scores_mean_is_a_new_version_other_changes_are_history_only(editor):
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="c", kind="contains", config={"value": "a"})
    services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Heavier", weight=2.0)
    assert evaluator.version == 1
    services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Look for b", config={"value": "b"})
    services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Same again", config={"value": "b"})
    services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Flip", inverted=True)

    evaluator.refresh_from_db()
    assert evaluator.version == 3
    history = list(evaluator.history.order_by("history_date").values_list("version", "weight", "history_change_reason", "history_user"))
    assert history == [
        (1, 1.0, "Created", editor.user.pk), (1, 2.0, "Heavier", editor.user.pk),
        (2, 2.0, "Look for b", editor.user.pk), (3, 2.0, "Flip", editor.user.pk),
    ]  # fmt: skip
    with pytest.raises(Invalid, match="change message is required"):
        services.evaluator_update(evaluator=evaluator, actor=editor.user, message=" ", config={"value": "c"})


def test_viewers_may_not_write_evaluators(editor):
    viewer = MembershipFactory(project=editor.project, role=Role.VIEWER)
    with pytest.raises(Forbidden):
        services.evaluator_create(project=editor.project, actor=viewer.user, name="c", kind="contains", config={"value": "a"})
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="c", kind="contains", config={"value": "a"})
    with pytest.raises(Forbidden):
        services.evaluator_update(evaluator=evaluator, actor=viewer.user, message="x", config={"value": "b"})
    with pytest.raises(Forbidden):
        services.evaluator_delete(evaluator=evaluator, actor=editor.user)  # deleting needs an admin


def test_evaluators_of_another_project_cannot_score_an_experiment(editor):
    run = RunFactory(experiment__project=editor.project)
    elsewhere = services.evaluator_create(project=MembershipFactory().project, actor=None, name="c", kind="contains", config={"value": "a"})
    with pytest.raises(Invalid, match="belong to another project: c"):
        services.experiment_evaluators_set(experiment=run.experiment, actor=editor.user, evaluators=[elsewhere])


# --- LLM judge config --------------------------------------------------------------------------


@pytest.fixture
def rubric(editor, endpoint):
    return prompt_services.prompt_create(
        project=editor.project, actor=editor.user, name="rubric", message="v1", endpoint=endpoint,
        template="Grade from 1 to 5.\nAnswer: {{ output }}\nExpected: {{ expected }}",
    )  # fmt: skip


def test_a_judge_pins_its_rubric_to_the_version_it_was_saved_with(editor, rubric):
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="judge", kind="llm_judge", config={"rubric": "rubric"})
    assert evaluator.config == {"rubric": "rubric", "rubric_version": 1, "scale": [1, 5]}
    prompt_services.prompt_update(prompt=rubric, actor=editor.user, message="v2", template="Grade: {{ output }}")
    evaluator = services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Weight", weight=3)
    assert evaluator.config["rubric_version"] == 1 and evaluator.version == 1
    evaluator = services.evaluator_update(evaluator=evaluator, actor=editor.user, message="New rubric", config={"rubric": "rubric"})
    assert evaluator.config["rubric_version"] == 2 and evaluator.version == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rubric": "nope"}, "the project has no prompt named 'nope'"),
        ({"rubric": "rubric", "rubric_version": 9}, "has no version 9"),
        ({"rubric": "rubric", "scale": [5, 1]}, '"scale" must be [lowest, highest]'),
        ({"rubric": "rubric", "endpoint": "missing"}, "there is none named 'missing'"),
        ({}, "The llm_judge config needs 'rubric'."),
    ],
)
def test_judge_configs_are_checked_on_save(editor, rubric, config, message):
    with pytest.raises(Invalid) as caught:
        services.evaluator_create(project=editor.project, actor=editor.user, name="judge", kind="llm_judge", config=config)
    assert message in caught.value.message


def test_a_rubric_using_variables_the_judge_does_not_provide_is_refused(editor, rubric):
    prompt_services.prompt_update(prompt=rubric, actor=editor.user, message="v2", template="{{ output }} {{ tone }}")
    with pytest.raises(Invalid, match=r"uses variables the judge does not provide: tone \(available: output, expected, input, vars, metadata\)"):
        services.evaluator_create(project=editor.project, actor=editor.user, name="judge", kind="llm_judge", config={"rubric": "rubric"})


# --- Admin -----------------------------------------------------------------------------------------


def admin_form(editor, **overrides):
    return {
        "project": editor.project.pk, "name": "digits", "description": "", "kind": "regex",
        "config": json.dumps({"value": r"\d+"}), "weight": "1", "threshold": "", "enabled": "on",
        "change_message": "First version", **overrides,
    }  # fmt: skip


def test_the_admin_saves_through_the_service(client, editor):
    client.force_login(editor.user)
    response = client.post("/admin/evaluations/evaluator/add/", admin_form(editor))
    assert response.status_code == 302, response.content.decode()[:2000]
    evaluator = Evaluator.objects.get()
    assert evaluator.version == 1 and evaluator.history.get().history_change_reason == "First version"

    response = client.post(f"/admin/evaluations/evaluator/{evaluator.pk}/change/", admin_form(editor, config='{"value": "[0-9]+"}', change_message="Any digits"))  # fmt: skip
    assert response.status_code == 302
    evaluator.refresh_from_db()
    assert evaluator.version == 2 and evaluator.history.first().history_user == editor.user


def test_the_admin_shows_the_parsers_message_on_the_config_and_saves_nothing(client, editor):
    client.force_login(editor.user)
    response = client.post("/admin/evaluations/evaluator/add/", admin_form(editor, config=json.dumps({"value": "(a|b"})))
    assert response.status_code == 200
    message = "Invalid regular expression '(a|b': missing ), unterminated subpattern at position 0"
    assert response.context["adminform"].form.errors["config"] == [message]
    assert "missing ), unterminated subpattern at position 0" in response.content.decode()
    assert not Evaluator.objects.exists()


def test_the_admin_lists_only_the_users_projects(client, editor):
    mine = services.evaluator_create(project=editor.project, actor=None, name="mine", kind="contains", config={"value": "a"})
    services.evaluator_create(project=MembershipFactory().project, actor=None, name="theirs", kind="contains", config={"value": "a"})
    client.force_login(editor.user)
    response = client.get("/admin/evaluations/evaluator/")
    assert list(response.context["cl"].result_list) == [mine]


# --- Plugins ---------------------------------------------------------------------------------------

PLUGIN = '''
from evaluations.kinds import Result, ScoreError
from promptlab.errors import Invalid


class Shouting:
    description = "The share of capital letters."

    def validate_config(self, config, *, project):
        if set(config) - {"min_ratio"}:
            raise Invalid("shouting takes only min_ratio")
        return {"min_ratio": config.get("min_ratio", 1.0)}

    def score(self, run, config):
        letters = [c for c in run.output if c.isalpha()]
        if not letters:
            raise ScoreError("no letters to judge")
        ratio = sum(c.isupper() for c in letters) / len(letters)
        return Result(value=ratio, passed=ratio >= config["min_ratio"], reason=f"{ratio:.0%} capitals")


class Crashing:
    def validate_config(self, config, *, project):
        return config

    def score(self, run, config):
        raise ZeroDivisionError("plugin bug")
'''


@pytest.fixture
def plugin_distribution(tmp_path, monkeypatch):
    """An installed distribution, as pip leaves one: a module and its *.dist-info with entry points."""
    (tmp_path / "shouting_kind.py").write_text(PLUGIN)
    info = tmp_path / "shouting_kind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shouting-kind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [promptlab.evaluators]
        shouting = shouting_kind:Shouting
        crashing = shouting_kind:Crashing
        missing = shouting_kind:NoSuchClass
        contains = shouting_kind:Shouting
    """))  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds.reload()
    yield
    monkeypatch.undo()
    kinds.reload()


def test_a_plugin_registers_kinds_through_entry_points(plugin_distribution, editor):
    assert {"shouting", "crashing"} <= set(kinds.kinds())
    problems = {problem.name: problem.error for problem in kinds.plugin_errors()}
    assert "AttributeError" in problems["missing"]  # listed, and the rest still load
    assert problems["contains"] == "ValueError: another kind already has this name"  # built-ins cannot be replaced
    assert kinds.get("contains").__class__.__name__ == "Check"

    run = RunFactory(experiment__project=editor.project, output="HELLO there")
    shouting = services.evaluator_create(project=editor.project, actor=editor.user, name="loud", kind="shouting", config={"min_ratio": 0.5})
    crashing = services.evaluator_create(project=editor.project, actor=editor.user, name="crash", kind="crashing")
    services.experiment_evaluators_set(experiment=run.experiment, actor=editor.user, evaluators=[shouting, crashing])
    services.score_run(run_id=run.pk)

    loud = Score.objects.get(evaluator=shouting)
    assert (loud.status, loud.value, loud.passed, loud.reason) == (ScoreStatus.OK, 0.5, True, "50% capitals")
    crash = Score.objects.get(evaluator=crashing)
    assert (crash.status, crash.error_kind) == (ScoreStatus.ERRORED, "internal")
    assert "ZeroDivisionError: plugin bug" in crash.reason
    with pytest.raises(Invalid, match="shouting takes only min_ratio"):
        services.evaluator_create(project=editor.project, actor=editor.user, name="bad", kind="shouting", config={"x": 1})


def test_an_uninstalled_plugin_kind_errors_its_scores(editor, plugin_distribution, monkeypatch):
    run = RunFactory(experiment__project=editor.project, output="HI")
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="loud", kind="shouting")
    services.experiment_evaluators_set(experiment=run.experiment, actor=editor.user, evaluators=[evaluator])
    monkeypatch.undo()
    kinds.reload()

    services.score_run(run_id=run.pk)
    score = Score.objects.get()
    assert score.status == ScoreStatus.ERRORED and "Unknown evaluator kind 'shouting'" in score.reason


def test_the_admin_shows_an_evaluators_history(client, editor):
    evaluator = services.evaluator_create(project=editor.project, actor=editor.user, name="c", kind="contains", config={"value": "a"})
    services.evaluator_update(evaluator=evaluator, actor=editor.user, message="Look for b", config={"value": "b"})
    client.force_login(editor.user)
    response = client.get(f"/admin/evaluations/evaluator/{evaluator.pk}/history/")
    assert response.status_code == 200
    assert "Look for b" in response.content.decode()


def test_attaching_an_evaluator_in_the_admin_goes_through_the_service(client, editor, django_capture_on_commit_callbacks, monkeypatch):  # fmt: skip
    from evaluations import tasks
    from evaluations.models import ExperimentEvaluator

    run = RunFactory(experiment__project=editor.project)
    evaluator = services.evaluator_create(project=editor.project, actor=None, name="c", kind="contains", config={"value": "a"})
    elsewhere = services.evaluator_create(project=MembershipFactory().project, actor=None, name="x", kind="contains", config={"value": "a"})
    enqueued = []
    monkeypatch.setattr(tasks.rescore_experiment, "apply_async", lambda args, **options: enqueued.append(tuple(args)))
    client.force_login(editor.user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/evaluations/experimentevaluator/add/", {"experiment": run.experiment.pk, "evaluator": evaluator.pk})
    assert response.status_code == 302
    assert ExperimentEvaluator.objects.get().evaluator == evaluator
    assert enqueued == [(run.experiment.pk, [evaluator.pk], False)]  # its done runs get scored

    response = client.post("/admin/evaluations/experimentevaluator/add/", {"experiment": run.experiment.pk, "evaluator": elsewhere.pk})
    assert response.status_code == 200 and "evaluator" in response.context["adminform"].form.errors
    assert ExperimentEvaluator.objects.count() == 1
