"""The contains_json kind (promptfoo's contains-json): an object anywhere in the output, read as
JSON or as a YAML flow mapping like promptfoo's parser reads it, optionally matching a schema."""

import pytest

from evaluations import kinds, services
from evaluations.kinds.base import RunContext
from evaluations.kinds.deterministic import json_objects_in
from evaluations.models import Score, ScoreStatus
from promptlab.errors import Invalid
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "required": ["status"]}


def check(output: str, config: dict | None = None):
    return kinds.get("contains_json").score(RunContext(run_id=1, project_id=1, output=output), config or {})


@pytest.mark.parametrize(
    ("output", "found"),
    [
        ('Here it is: {"a": 1} and more', [{"a": 1}]),
        ('```json\n{"a": {"b": "}"}}\n```', [{"a": {"b": "}"}}]),  # a brace inside a string
        ("{name: Ada, tags: [x]}", [{"name": "Ada", "tags": ["x"]}]),  # YAML flow mapping, as promptfoo reads it
        ('{"a": 1} {"b": 2}', [{"a": 1}, {"b": 2}]),
        ("{ not json at all", []),
        ("[1, 2, 3]", []),  # a list is not an object
        ('{"a": NaN}', [{"a": "NaN"}]),  # not JSON; YAML reads NaN as text
        ("{{{{", []),
    ],
)
def test_objects_are_found_as_promptfoo_finds_them(output, found):
    assert json_objects_in(output) == found


def test_an_output_with_an_object_passes_and_one_without_fails():
    assert check('The order: {"id": 7}').passed
    result = check("No JSON here.")
    assert not result.passed and result.value == 0.0 and "contain a JSON object" in result.reason


def test_with_a_schema_some_object_must_match_it():
    assert check('{"id": 7} then {"status": "shipped"}', {"schema": SCHEMA}).passed
    result = check('{"id": 7}', {"schema": SCHEMA})
    assert not result.passed and "'status' is a required property" in result.reason


def test_a_schema_given_as_yaml_text_is_read_and_checked_on_save():
    config = kinds.get("contains_json").validate_config({"schema": "{type: object, required: [status]}"}, project=None)
    assert config == {"schema": SCHEMA}
    with pytest.raises(Invalid, match="Invalid JSON schema"):
        kinds.get("contains_json").validate_config({"schema": {"type": "nonsense"}}, project=None)
    with pytest.raises(Invalid, match="Unknown contains_json config keys: value"):
        kinds.get("contains_json").validate_config({"value": "x"}, project=None)


def test_an_output_full_of_braces_is_scanned_in_bounded_time():
    assert json_objects_in("{" * 200_000) == []


@pytest.mark.parametrize(("inverted", "passes"), [(False, True), (True, False)])
def test_scored_through_the_service_with_not_as_inverted(inverted, passes):
    run = RunFactory(output='{"status": "ok"}')
    evaluator = services.evaluator_create(project=run.experiment.project, actor=None, name="json", kind="contains_json",
                                          config={"schema": SCHEMA}, inverted=inverted)  # fmt: skip
    services.experiment_evaluators_set(experiment=run.experiment, actor=None, evaluators=[evaluator])
    services.score_run(run_id=run.pk)
    score = Score.objects.get(run=run)
    assert (score.status, score.passed, score.value) == (ScoreStatus.OK, passes, 1.0 if passes else 0.0)
