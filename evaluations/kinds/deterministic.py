"""Checks computed from the run alone, with no model call. Those that promptfoo also has
(equals, contains, icontains, contains_any/all, icontains_any/all, starts_with, regex,
is_json, levenshtein, latency, cost) behave like its assertions of the same name; docs/user-guide/evaluators.md
lists the intentional differences.

Every check is pass/fail (score 1 or 0) except levenshtein, whose score is the similarity
1 - distance / longer length while the pass is decided on the distance, as in promptfoo
(with `binary`, its score is 1 or 0 as promptfoo scores it: a promptfoo import sets it, so a
test's weighted score and threshold give promptfoo's verdict).
"""

import json
import re
from collections.abc import Callable
from decimal import Decimal

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from rapidfuzz.distance import Levenshtein

from evaluations.kinds.base import Result, RunContext, ScoreError, check_keys, check_template, expected_value, is_template, number
from promptlab.errors import Invalid
from promptlab.patterns import PatternTimeout, UserPattern, compile_user_pattern

SHOWN_CHARS = 200


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _verdict(passed: bool, passing: str, failing: str) -> Result:
    return Result(value=1.0 if passed else 0.0, passed=passed, reason=passing if passed else failing)


def _js_string(value) -> str:
    """A value as JavaScript's String() writes it, so 42.0 compares as "42" and True as "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Check:
    """A deterministic kind: its config keys, a config normalizer and its test."""

    def __init__(self, name: str, description: str, test: Callable[[RunContext, dict], Result], *,
                 required: tuple = (), optional: tuple = ("value",), normalize: Callable[[dict, str], dict] | None = None):  # fmt: skip
        self.name, self.description, self._test = name, description, test
        self._required, self._optional, self._normalize = required, optional, normalize

    def validate_config(self, config: dict, *, project) -> dict:
        config = check_keys(config, kind=self.name, required=self._required, optional=self._optional)
        return self._normalize(config, self.name) if self._normalize else config

    def score(self, run: RunContext, config: dict) -> Result:
        return self._test(run, config)


# --- Values ------------------------------------------------------------------------------------


def _scalar_value(config: dict, kind: str) -> dict:
    """contains, icontains, starts_with, levenshtein: a non-empty string or a number."""
    if "value" in config:
        value = config["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
            raise Invalid(f"{kind}: \"value\" must be a non-empty string or a number, not {value!r}.")
        check_template(value, kind=kind)
    return config


def _text(value, kind: str) -> str:
    if isinstance(value, (list, dict)):
        raise ScoreError(f"{kind} compares with one string, not {type(value).__name__} {value!r}.", kind="bad_value")
    return _js_string(value)


def split_values(text: str) -> list[str]:
    """promptfoo's comma-separated values: fields are trimmed; "double quotes" keep commas,
    with \\" or "" for a quote inside."""
    values, i = [], 0
    while i < len(text):
        while i < len(text) and (text[i] == "," or text[i].isspace()):
            i += 1
        if i >= len(text):
            break
        if text[i] == '"':
            field, i, closed = [], i + 1, False
            while i < len(text):
                if text[i] == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
                    field.append(text[i + 1])
                    i += 2
                elif text[i] == '"' and text[i + 1 : i + 2] == '"':
                    field.append('"')
                    i += 2
                elif text[i] == '"':
                    i, closed = i + 1, True
                    break
                else:
                    field.append(text[i])
                    i += 1
            if not closed:
                raise ValueError("a quoted value is not closed")
            while i < len(text) and text[i].isspace():
                i += 1
            if i < len(text) and text[i] != ",":
                raise ValueError("a comma must follow a quoted value")
            values.append("".join(field))
        else:
            end = text.find(",", i)
            end = len(text) if end == -1 else end
            values.append(text[i:end].strip())
            i = end
    return values


def _list_value(config: dict, kind: str) -> dict:
    """contains_any/all: a list of strings or numbers, or one comma-separated string."""
    if "value" not in config:
        return config
    value = config["value"]
    if isinstance(value, str) and not is_template(value):
        try:
            if not split_values(value):
                raise ValueError("it holds no values")
        except ValueError as exc:
            raise Invalid(f"{kind}: \"value\" is not a comma-separated list: {exc}.") from None
    elif isinstance(value, list):
        if not value or any(isinstance(item, bool) or not isinstance(item, (str, int, float)) for item in value):
            raise Invalid(f"{kind}: \"value\" must be a non-empty list of strings or numbers.")
    elif not isinstance(value, str):
        raise Invalid(f"{kind}: \"value\" must be a list of strings or a comma-separated string, not {value!r}.")
    check_template(value, kind=kind)
    return config


def _values(value, kind: str) -> list[str]:
    if isinstance(value, str):
        try:
            values = split_values(value)
        except ValueError as exc:
            raise ScoreError(f"{kind}: the expected values are not a comma-separated list: {exc}.", kind="bad_value") from None
    elif isinstance(value, list):
        values = [_js_string(item) for item in value]
    else:
        values = []
    if not values:
        raise ScoreError(f"{kind}: there are no values to look for.", kind="bad_value")
    return values


def _any_value(config: dict, kind: str) -> dict:
    if "value" in config:
        if config["value"] is None:
            raise Invalid(f'{kind}: "value" cannot be null.')
        check_template(config["value"], kind=kind)
    return config


# --- Checks ------------------------------------------------------------------------------------


def strict_json(text: str):
    """JSON as JavaScript's JSON.parse reads it: NaN and Infinity are not JSON."""

    def refuse(name):
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _same_json(a, b) -> bool:
    """Deep equality that, like JavaScript's, never takes true for 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _equals(run: RunContext, config: dict) -> Result:
    expected = expected_value(config, run)
    if isinstance(expected, (dict, list)):
        try:
            passed = _same_json(strict_json(run.output), expected)
        except ValueError:
            passed = False
        shown = json.dumps(expected)
    else:
        shown = _js_string(expected)
        passed = run.output == shown
    return _verdict(passed, "The output equals the expected value.", f"Expected the output {_clip(run.output)!r} to equal {_clip(shown)!r}.")  # fmt: skip


def _contains(ignore_case: bool) -> Callable[[RunContext, dict], Result]:
    def test(run: RunContext, config: dict) -> Result:
        needle = _text(expected_value(config, run), "contains")
        haystack = run.output.lower() if ignore_case else run.output
        passed = (needle.lower() if ignore_case else needle) in haystack
        return _verdict(passed, f"The output contains {_clip(needle)!r}.", f"Expected the output to contain {_clip(needle)!r}.")

    return test


def _contains_many(*, every: bool, ignore_case: bool) -> Callable[[RunContext, dict], Result]:
    def test(run: RunContext, config: dict) -> Result:
        values = _values(expected_value(config, run), "contains_all" if every else "contains_any")
        haystack = run.output.lower() if ignore_case else run.output
        missing = [value for value in values if (value.lower() if ignore_case else value) not in haystack]
        listed = ", ".join(values)
        if every:
            return _verdict(not missing, f"The output contains all of [{listed}].",
                            f"Expected the output to contain all of [{listed}]. Missing: [{', '.join(missing)}].")  # fmt: skip
        return _verdict(len(missing) < len(values), f"The output contains one of [{listed}].",
                        f"Expected the output to contain one of [{listed}].")  # fmt: skip

    return test


def _starts_with(run: RunContext, config: dict) -> Result:
    prefix = _text(expected_value(config, run), "starts_with")
    return _verdict(run.output.startswith(prefix), f"The output starts with {_clip(prefix)!r}.",
                    f"Expected the output to start with {_clip(prefix)!r}.")  # fmt: skip


# JavaScript spellings that Python's re writes differently; the rest of the syntax is shared.
_JS_NAMED_GROUP = "(?<"
_JS_BACKREFERENCE = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def python_pattern(pattern: str, *, multiline: bool) -> str:
    """A JavaScript RegExp source as Python's re needs it: (?<name>...) and \\k<name> become
    (?P<name>...) and (?P=name), and without the m flag a $ matches only at the very end
    (Python's $ would also match before a final newline)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            reference = None if in_class else _JS_BACKREFERENCE.match(pattern, i)
            if reference:
                out.append(f"(?P={reference[1]})")
                i = reference.end()
            else:
                out.append(pattern[i : i + 2])
                i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif pattern.startswith(_JS_NAMED_GROUP, i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
            continue
        elif char == "$" and not multiline:
            out.append(r"\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def compile_regex(pattern: str, flags: str = "") -> UserPattern:
    """Compile a JavaScript-style pattern, or raise Invalid with re's message and the position it points at."""
    flag_bits = sum(REGEX_FLAGS[flag] for flag in set(flags))
    return compile_user_pattern(python_pattern(pattern, multiline="m" in flags), flag_bits, shown=_clip(pattern))


def _regex_config(config: dict, kind: str) -> dict:
    flags = config.get("flags", "")
    if not isinstance(flags, str) or set(flags) - set(REGEX_FLAGS):
        raise Invalid(f'regex: "flags" may hold only {", ".join(REGEX_FLAGS)} (ignore case, multiline, dot matches newline), not {flags!r}.')  # fmt: skip
    if "value" in config:
        pattern = config["value"]
        if not isinstance(pattern, str) or pattern == "":
            raise Invalid(f'regex: "value" must be a non-empty pattern, not {pattern!r}.')
        check_template(pattern, kind=kind)
        if not is_template(pattern):
            compile_regex(pattern, flags)
    return config


def _regex(run: RunContext, config: dict) -> Result:
    pattern = _text(expected_value(config, run), "regex")
    try:
        matched = compile_regex(pattern, config.get("flags", "")).search(run.output)
    except Invalid as exc:  # a templated pattern, or the item's expected output, that is no regex
        raise ScoreError(exc.message, kind="bad_value") from None
    except PatternTimeout as exc:
        raise ScoreError(exc.message, kind=exc.code) from None
    return _verdict(bool(matched), f"The output matches /{_clip(pattern)}/.",
                    f"Expected the output to match /{_clip(pattern)}/.")  # fmt: skip


def check_schema(schema, kind: str):
    """The schema as an object (a string is read as JSON or YAML, as promptfoo does), checked
    against its metaschema: Invalid carries jsonschema's own message."""
    if isinstance(schema, str):
        try:
            schema = yaml.safe_load(schema)
        except yaml.YAMLError as exc:
            raise Invalid(f"{kind}: the schema is neither JSON nor YAML: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise Invalid(f"{kind}: the schema must be a JSON object, not {schema!r}.")
    try:
        validators.validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(root)"
        raise Invalid(f"Invalid JSON schema at {where}: {exc.message}") from None
    return schema


def _schema_config(config: dict, kind: str) -> dict:
    if "schema" in config:
        config["schema"] = check_schema(config["schema"], kind)
    return config


def _is_json(run: RunContext, config: dict) -> Result:
    try:
        data = strict_json(run.output)
    except ValueError as exc:
        return _verdict(False, "", f"Expected the output to be valid JSON: {exc}.")
    if "schema" not in config:
        return _verdict(True, "The output is valid JSON.", "")
    schema = config["schema"]
    errors = sorted(validators.validator_for(schema, default=Draft202012Validator)(schema).iter_errors(data), key=str)
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        return _verdict(False, "", f"The JSON does not match the schema at {where}: {errors[0].message}")
    return _verdict(True, "The output is JSON that matches the schema.", "")


def _bounds(config: dict, kind: str) -> dict:
    if "min" not in config and "max" not in config:
        raise Invalid(f'{kind}: give "min", "max" or both.')
    for key in ("min", "max"):
        if key in config:
            number(config, key, kind=kind, minimum=0, integer=True)
    if "min" in config and "max" in config and config["min"] > config["max"]:
        raise Invalid(f'{kind}: "min" ({config["min"]}) is more than "max" ({config["max"]}).')
    return config


def _count(what: str, measure: Callable[[str], int]) -> Callable[[RunContext, dict], Result]:
    def test(run: RunContext, config: dict) -> Result:
        count, low, high = measure(run.output), config.get("min"), config.get("max")
        passed = (low is None or count >= low) and (high is None or count <= high)
        wanted = f"between {low} and {high}" if low is not None and high is not None else f"at least {low}" if low is not None else f"at most {high}"  # fmt: skip
        return _verdict(passed, f"{count} {what}, {wanted}.", f"{count} {what}; expected {wanted}.")

    return test


def _levenshtein_config(config: dict, kind: str) -> dict:
    config = _scalar_value(config, kind)
    config.setdefault("max_distance", 5)  # promptfoo's default `threshold`
    number(config, "max_distance", kind=kind, minimum=0, integer=True)
    if not isinstance(config.get("binary", False), bool):
        raise Invalid(f"{kind}: 'binary' is true (score 1 or 0) or false (score the similarity), not {config['binary']!r}.")
    return config


def _levenshtein(run: RunContext, config: dict) -> Result:
    expected = _text(expected_value(config, run), "levenshtein")
    distance = Levenshtein.distance(run.output, expected)
    longer = max(len(run.output), len(expected))
    similarity = 1.0 - distance / longer if longer else 1.0
    passed = distance <= config["max_distance"]
    reason = f"Edit distance {distance} ({'within' if passed else 'more than'} the maximum of {config['max_distance']}); similarity {similarity:.3f}."  # fmt: skip
    return Result(value=float(passed) if config.get("binary") else similarity, passed=passed, reason=reason)


def _ceiling(key: str, kind: str, *, minimum: float):
    def normalize(config: dict, _kind: str) -> dict:
        number(config, key, kind=kind, minimum=minimum)
        return config

    return normalize


def _latency(run: RunContext, config: dict) -> Result:
    if run.latency_ms is None:
        raise ScoreError("The run has no recorded latency.", kind="no_latency")
    limit = config["max_ms"]
    return _verdict(run.latency_ms <= limit, f"Latency {run.latency_ms:.0f} ms is within {limit:g} ms.",
                    f"Latency {run.latency_ms:.0f} ms is more than {limit:g} ms.")  # fmt: skip


def _cost(run: RunContext, config: dict) -> Result:
    if run.cost_usd is None:
        raise ScoreError("The run's cost is unknown: its model has no price.", kind="no_cost")
    limit = Decimal(str(config["max_usd"]))
    return _verdict(run.cost_usd <= limit, f"Cost ${run.cost_usd} is within ${limit}.", f"Cost ${run.cost_usd} is more than ${limit}.")


# Phrases with which models decline; matched case-insensitively anywhere in the output.
REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry,? but|I apologi[sz]e,? but|I (?:can ?not|can't|won't|will not|am unable to|'m unable to|"
    r"am not able to|'m not able to|must (?:decline|refuse)|do not feel comfortable|don't feel comfortable)\b"
    r"|\bas an AI\b|\bI(?:'m| am) not (?:allowed|permitted|able) to\b|\bagainst my (?:guidelines|policies|programming)\b)",
    re.IGNORECASE,
)


def _is_refusal(run: RunContext, config: dict) -> Result:
    text = run.output.replace("\u2019", "'")
    if not text.strip():
        return _verdict(True, "An empty answer counts as a refusal.", "")
    match = REFUSAL.search(text)
    return _verdict(bool(match), f"The output declines: {match[0] if match else ''!r}.", "The output does not read as a refusal.")


def _words(text: str) -> int:
    return len(text.split())


KINDS = {
    kind.name: kind
    for kind in [
        Check("equals", "The output is exactly the value (a JSON value: the output parsed as JSON equals it).", _equals, normalize=_any_value),
        Check("contains", "The output contains the value.", _contains(False), normalize=_scalar_value),
        Check("icontains", "The output contains the value, ignoring case.", _contains(True), normalize=_scalar_value),
        Check("contains_any", "The output contains at least one of the values.", _contains_many(every=False, ignore_case=False), normalize=_list_value),
        Check("contains_all", "The output contains every one of the values.", _contains_many(every=True, ignore_case=False), normalize=_list_value),
        Check("icontains_any", "contains_any, ignoring case.", _contains_many(every=False, ignore_case=True), normalize=_list_value),
        Check("icontains_all", "contains_all, ignoring case.", _contains_many(every=True, ignore_case=True), normalize=_list_value),
        Check("starts_with", "The output starts with the value.", _starts_with, normalize=_scalar_value),
        Check("regex", "The output matches the regular expression (searched anywhere).", _regex, optional=("value", "flags"), normalize=_regex_config),
        Check("is_json", "The output is valid JSON (and matches \"schema\" when given).", _is_json, optional=("schema",), normalize=_schema_config),
        Check("json_schema", "The output is JSON that matches \"schema\".", _is_json, required=("schema",), optional=(), normalize=_schema_config),
        Check("word_count", "The number of words is within \"min\" and/or \"max\".", _count("words", _words), optional=("min", "max"), normalize=_bounds),
        Check("char_count", "The number of characters is within \"min\" and/or \"max\".", _count("characters", len), optional=("min", "max"), normalize=_bounds),
        Check("levenshtein", "The edit distance to the value is at most \"max_distance\" (default 5).", _levenshtein, optional=("value", "max_distance", "binary"), normalize=_levenshtein_config),
        Check("latency", "The model answered within \"max_ms\" milliseconds.", _latency, required=("max_ms",), optional=(), normalize=_ceiling("max_ms", "latency", minimum=0)),
        Check("cost", "The call cost at most \"max_usd\" dollars.", _cost, required=("max_usd",), optional=(), normalize=_ceiling("max_usd", "cost", minimum=0)),
        Check("is_refusal", "The model declined to answer (or answered nothing).", _is_refusal, optional=()),
    ]
}  # fmt: skip


# --- contains_json (appended for promptfoo's contains-json) -------------------------------------

# How many "{" are tried as the start of an object, and how many of those as a YAML flow mapping
# of at most YAML_SCAN_CHARS: an output full of braces that are not JSON must stay cheap to score.
JSON_SCAN_STARTS = 1_000
YAML_SCAN_TRIES = 20
YAML_SCAN_CHARS = 10_000


def _not_json(name: str):
    raise ValueError(f"{name} is not valid JSON")


_STRICT_DECODER = json.JSONDecoder(parse_constant=_not_json)  # NaN and Infinity are not JSON, as in JSON.parse


def _balanced_end(text: str, start: int) -> int | None:
    """The index just past the "}" that closes the "{" at `start` (braces inside double-quoted
    strings do not count), or None."""
    depth, quoted, escaped = 0, False, False
    for index in range(start, min(len(text), start + YAML_SCAN_CHARS)):
        char = text[index]
        if quoted:
            escaped, quoted = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def json_objects_in(text: str) -> list[dict]:
    """The objects written in the text, in order, as promptfoo's contains-json finds them: a
    "{" that starts JSON, or a YAML flow mapping such as {name: x}, which its parser also reads."""
    found, start, tried, yaml_tries = [], text.find("{"), 0, 0
    while start != -1 and tried < JSON_SCAN_STARTS:
        tried += 1
        value, end = None, None
        try:
            value, end = _STRICT_DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            yaml_tries += 1
            end = _balanced_end(text, start) if yaml_tries <= YAML_SCAN_TRIES else None
            if end is not None:
                try:
                    value = yaml.safe_load(text[start:end])
                except (yaml.YAMLError, RecursionError):
                    value = None
        if isinstance(value, dict):
            found.append(value)
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)
    return found


def _contains_json(run: RunContext, config: dict) -> Result:
    objects = json_objects_in(run.output)
    if not objects:
        return _verdict(False, "", "Expected the output to contain a JSON object.")
    if "schema" not in config:
        return _verdict(True, f"The output contains {len(objects)} JSON object{'s' * (len(objects) != 1)}.", "")
    schema = config["schema"]
    validator = validators.validator_for(schema, default=Draft202012Validator)(schema)
    first_error = None
    for data in objects:
        errors = sorted(validator.iter_errors(data), key=str)
        if not errors:
            return _verdict(True, "The output contains a JSON object that matches the schema.", "")
        first_error = first_error or errors[0]
    where = "/".join(map(str, first_error.absolute_path)) or "(root)"
    return _verdict(False, "", f"No JSON object in the output matches the schema; the first fails at {where}: {first_error.message}")


KINDS["contains_json"] = Check(
    "contains_json", 'The output contains a JSON object somewhere (one that matches "schema" when given).', _contains_json,
    optional=("schema",), normalize=_schema_config,
)  # fmt: skip
