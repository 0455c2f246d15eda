"""Every built-in deterministic kind, scored through the service on a real run row: pass,
fail, inverted, and promptfoo's semantics where promptfoo has the same assertion."""

import pytest

from evaluations import kinds, services
from evaluations.kinds.base import RunContext, ScoreError
from evaluations.kinds.deterministic import python_pattern, split_values
from evaluations.models import Score, ScoreStatus
from promptlab.errors import Invalid
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}

# (kind, config, output, run fields, passes)
CASES = [
    ("contains_json", {}, 'Order: {"id": 7}', {}, True),
    ("contains_json", {"schema": {"type": "object", "required": ["status"]}}, '{"id": 7}', {}, False),
    # equals: exact, untrimmed, case-sensitive; an object value compares the output as JSON
    ("equals", {"value": "Paris"}, "Paris", {}, True),
    ("equals", {"value": "Paris"}, "Paris\n", {}, False),
    ("equals", {"value": "Paris"}, "paris", {}, False),
    ("equals", {}, "Paris", {"item__expected": "Paris"}, True),
    ("equals", {"value": {"a": 1, "b": [1, 2]}}, '{"b": [1, 2], "a": 1}', {}, True),
    ("equals", {"value": {"a": 1}}, '{"a": true}', {}, False),
    ("equals", {"value": {"a": 1}}, "not json", {}, False),
    ("equals", {"value": 42}, "42", {}, True),
    ("contains", {"value": "World"}, "Hello World", {}, True),
    ("contains", {"value": "world"}, "Hello World", {}, False),
    ("contains", {"value": "{{ city }}"}, "I love Paris", {"item__vars": {"city": "Paris"}}, True),
    ("contains", {}, "The answer is 42.", {"item__expected": "42"}, True),
    ("icontains", {"value": "WORLD"}, "Hello World", {}, True),
    ("icontains", {"value": "moon"}, "Hello World", {}, False),
    ("contains_any", {"value": "cat, dog"}, "a dog", {}, True),
    ("contains_any", {"value": ["cat", "dog"]}, "a bird", {}, False),
    ("contains_any", {"value": '"a, b", c'}, "x a, b y", {}, True),
    ("contains_any", {"value": '"a, b", c'}, "only a here", {}, False),
    ("contains_all", {"value": ["cat", "dog"]}, "cat and dog", {}, True),
    ("contains_all", {"value": ["cat", "dog"]}, "cat only", {}, False),
    ("icontains_any", {"value": ["CAT", "cow"]}, "a cat", {}, True),
    ("icontains_any", {"value": ["cow"]}, "a cat", {}, False),
    ("icontains_all", {"value": "CAT,DOG"}, "cat, dog", {}, True),
    ("icontains_all", {"value": "CAT,DOG"}, "cat", {}, False),
    ("starts_with", {"value": "Yes"}, "Yes, indeed", {}, True),
    ("starts_with", {"value": "Yes"}, " Yes, indeed", {}, False),
    # regex: searched anywhere, JavaScript's named groups, $ only at the very end
    ("regex", {"value": r"\d{3}-\d{4}"}, "call 555-1234 now", {}, True),
    ("regex", {"value": r"^\d+$"}, "42", {}, True),
    ("regex", {"value": r"^\d+$"}, "42\n", {}, False),
    ("regex", {"value": r"^\d+$", "flags": "m"}, "x\n42\n", {}, True),
    ("regex", {"value": r"(?<word>\w+) \k<word>"}, "bye bye", {}, True),
    ("regex", {"value": "hello"}, "HELLO", {}, False),
    ("regex", {"value": "hello", "flags": "i"}, "HELLO", {}, True),
    ("is_json", {}, '  {"a": [1, 2]}  ', {}, True),
    ("is_json", {}, '"just a string"', {}, True),
    ("is_json", {}, "NaN", {}, False),
    ("is_json", {}, "{'a': 1}", {}, False),
    ("is_json", {"schema": SCHEMA}, '{"name": "Ada"}', {}, True),
    ("is_json", {"schema": SCHEMA}, '{"name": 3}', {}, False),
    ("json_schema", {"schema": SCHEMA}, '{"name": "Ada"}', {}, True),
    ("json_schema", {"schema": SCHEMA}, "{}", {}, False),
    ("word_count", {"min": 2, "max": 3}, "one two", {}, True),
    ("word_count", {"min": 2, "max": 3}, "one", {}, False),
    ("char_count", {"max": 5}, "abcde", {}, True),
    ("char_count", {"max": 5}, "abcdef", {}, False),
    # levenshtein: promptfoo's threshold (max_distance here) defaults to 5
    ("levenshtein", {"value": "kitten"}, "sitting", {}, True),
    ("levenshtein", {"value": "kitten", "max_distance": 2}, "sitting", {}, False),
    ("levenshtein", {"value": "abc", "max_distance": 0}, "abd", {}, False),
    ("latency", {"max_ms": 200}, "x", {"latency_ms": 120}, True),
    ("latency", {"max_ms": 100}, "x", {"latency_ms": 120}, False),
    ("cost", {"max_usd": 0.01}, "x", {"cost_usd": "0.001"}, True),
    ("cost", {"max_usd": 0.0001}, "x", {"cost_usd": "0.001"}, False),
    ("is_refusal", {}, "I'm sorry, but I can\u2019t help with that.", {}, True),
    ("is_refusal", {}, "  ", {}, True),
    ("is_refusal", {}, "Paris is the capital of France.", {}, False),
]


def scored(kind: str, config: dict, output: str, *, inverted: bool = False, threshold=None, **run_fields) -> Score:
    run = RunFactory(output=output, **run_fields)
    evaluator = services.evaluator_create(
        project=run.experiment.project, actor=None, name="check", kind=kind, config=config, inverted=inverted, threshold=threshold
    )
    services.experiment_evaluators_set(experiment=run.experiment, actor=None, evaluators=[evaluator])
    services.score_run(run_id=run.pk)
    return Score.objects.get(run=run, evaluator=evaluator)


def test_every_deterministic_kind_has_cases():
    deterministic = {name for name in kinds.kinds() if name not in ("llm_judge", "embedding_similarity")}
    covered = {case[0] for case in CASES}
    assert deterministic <= covered
    assert {kind for kind in covered if any(c[0] == kind and c[4] for c in CASES)} == covered  # a passing case each
    assert {kind for kind in covered if any(c[0] == kind and not c[4] for c in CASES)} == covered  # and a failing one


@pytest.mark.parametrize("inverted", [False, True], ids=["plain", "inverted"])
@pytest.mark.parametrize(("kind", "config", "output", "run_fields", "passes"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_kind(kind, config, output, run_fields, passes, inverted):
    score = scored(kind, config, output, inverted=inverted, **run_fields)

    assert score.status == ScoreStatus.OK, score.reason
    assert score.passed is (passes != inverted), score.reason
    plain_value = 1 - score.value if inverted else score.value
    if kind != "levenshtein":
        assert plain_value == (1.0 if passes else 0.0)
    assert score.reason.startswith("Inverted: ") is inverted


def test_levenshtein_scores_the_similarity_and_passes_on_the_distance():
    score = scored("levenshtein", {"value": "kitten"}, "sitting")
    assert score.passed and score.value == pytest.approx(1 - 3 / 7)
    assert "Edit distance 3" in score.reason
    # binary: scored 1 or 0 as promptfoo scores it (what a promptfoo import asks for)
    assert scored("levenshtein", {"value": "kitten", "binary": True}, "sitting").value == 1.0
    assert scored("levenshtein", {"value": "kitten", "max_distance": 2, "binary": True}, "sitting").value == 0.0


def test_an_evaluator_threshold_decides_the_pass_on_the_score():
    assert not scored("levenshtein", {"value": "kitten"}, "sitting", threshold=0.9).passed
    assert scored("levenshtein", {"value": "kitten"}, "kitten", threshold=0.9).passed


@pytest.mark.parametrize(
    ("kind", "config", "run_fields", "error_kind"),
    [
        ("equals", {}, {"item__expected": ""}, "no_expected"),
        ("latency", {"max_ms": 10}, {"latency_ms": None}, "no_latency"),
        ("cost", {"max_usd": 1}, {"cost_usd": None}, "no_cost"),
        ("contains", {"value": "{{ missing }}"}, {}, "render"),
    ],
)
def test_what_cannot_be_scored_is_errored_never_failed(kind, config, run_fields, error_kind):
    score = scored(kind, config, "some output", **run_fields)
    assert (score.status, score.error_kind, score.value, score.passed) == (ScoreStatus.ERRORED, error_kind, None, None)
    assert score.reason


def test_inversion_is_applied_once_by_the_service_not_by_the_kind():
    kind = kinds.get("contains")
    result = kind.score(RunContext(run_id=1, project_id=1, output="abc"), {"value": "b"})
    assert result.passed and result.value == 1.0 and not result.reason.startswith("Inverted")


# --- promptfoo parity in the small ------------------------------------------------------------


def test_comma_separated_values_are_read_like_promptfoo():
    assert split_values("a, b ,c") == ["a", "b", "c"]
    assert split_values('"x, y", z') == ["x, y", "z"]
    assert split_values('"say ""hi""", "a \\" b"') == ['say "hi"', 'a " b']
    assert split_values(",, a,,") == ["a"]
    with pytest.raises(ValueError, match="not closed"):
        split_values('"open')


def test_javascript_regex_syntax_is_translated_for_python():
    assert python_pattern(r"(?<year>\d{4})-\k<year>", multiline=False) == r"(?P<year>\d{4})-(?P=year)"
    assert python_pattern(r"(?<=a)b(?<!c)", multiline=False) == r"(?<=a)b(?<!c)"  # lookbehinds stay
    assert python_pattern(r"\(?<x>[$]\$$", multiline=False) == r"\(?<x>[$]\$\Z"  # escaped and in a class stay
    assert python_pattern(r"^a$", multiline=True) == r"^a$"


# --- Config validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("regex", {"value": "(abc"}, "Invalid regular expression '(abc': missing ), unterminated subpattern at position 0"),
        ("regex", {"value": "[a-z"}, "unterminated character set at position 0"),
        ("regex", {"value": "a", "flags": "g"}, '"flags" may hold only i, m, s'),
        ("is_json", {"schema": {"type": "strin"}}, "Invalid JSON schema at type: 'strin' is not valid under any of the given schemas"),
        ("json_schema", {"schema": "type: [unclosed"}, "the schema is neither JSON nor YAML"),
        ("json_schema", {}, "The json_schema config needs 'schema'."),
        ("contains", {"vaule": "x"}, "Unknown contains config keys: vaule (allowed: value)."),
        ("contains", {"value": ""}, '"value" must be a non-empty string or a number'),
        ("contains", {"value": "{{ broken"}, "contains value, line 1"),
        ("contains_any", {"value": []}, '"value" must be a non-empty list'),
        ("contains_all", {"value": '"open, b'}, "is not a comma-separated list: a quoted value is not closed"),
        ("word_count", {}, 'give "min", "max" or both'),
        ("word_count", {"min": 5, "max": 2}, '"min" (5) is more than "max" (2)'),
        ("levenshtein", {"value": "a", "max_distance": -1}, "'max_distance' must be at least 0"),
        ("levenshtein", {"value": "a", "binary": "yes"}, "'binary' is true (score 1 or 0) or false"),
        ("latency", {}, "The latency config needs 'max_ms'."),
        ("cost", {"max_usd": "cheap"}, "'max_usd' must be a number"),
        ("embedding_similarity", {"endpoint": "nowhere"}, "there is none named 'nowhere'"),
        ("is_refusal", {"value": "x"}, "Unknown is_refusal config keys: value (allowed: none)."),
    ],
)
def test_invalid_configs_are_refused_with_the_reason(kind, config, message):
    with pytest.raises(Invalid) as caught:
        kinds.get(kind).validate_config(config, project=None)
    assert message in caught.value.message


def test_a_schema_may_be_given_as_json_or_yaml_text_and_is_stored_as_an_object():
    config = kinds.get("json_schema").validate_config({"schema": "type: object\nrequired: [name]"}, project=None)
    assert config == {"schema": {"type": "object", "required": ["name"]}}


def test_a_templated_regex_that_renders_invalid_is_an_errored_score():
    score = scored("regex", {"value": "{{ pattern }}"}, "abc", item__vars={"pattern": "(unclosed"})
    assert score.status == ScoreStatus.ERRORED and "missing )" in score.reason


def test_a_kind_raising_score_error_keeps_its_message():
    with pytest.raises(ScoreError, match="no recorded latency"):
        kinds.get("latency").score(RunContext(run_id=1, project_id=1, output=""), {"max_ms": 1})
