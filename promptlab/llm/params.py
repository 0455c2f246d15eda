"""Model parameters a prompt or a call may set, checked before anything is sent."""

from promptlab.errors import Invalid

RULES = {
    "temperature": (float, 0, 2),
    "top_p": (float, 0, 1),
    "max_tokens": (int, 1, 1_000_000),
    "presence_penalty": (float, -2, 2),
    "frequency_penalty": (float, -2, 2),
    "seed": (int, 0, 2**63 - 1),
}
RESPONSE_FORMAT_TYPES = {"text", "json_object", "json_schema"}


def validate_params(params: dict | None) -> dict:
    """Return the params unchanged, or raise Invalid naming every problem."""
    params = dict(params or {})
    problems = {}
    for name, value in params.items():
        if name in RULES:
            kind, low, high = RULES[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                problems[name] = f"must be {'an integer' if kind is int else 'a number'}"
            elif not low <= value <= high:
                problems[name] = f"must be between {low} and {high}"
        elif name == "stop":
            stops = [value] if isinstance(value, str) else value
            if not isinstance(stops, list) or not 1 <= len(stops) <= 4 or not all(isinstance(s, str) and s for s in stops):
                problems[name] = "must be a string or a list of 1 to 4 non-empty strings"
        elif name == "response_format":
            if error := _response_format_error(value):
                problems[name] = error
        else:
            problems[name] = f"is not a supported parameter (supported: {', '.join(sorted([*RULES, 'stop', 'response_format']))})"
    if problems:
        summary = "; ".join(f"{name} {problem}" for name, problem in problems.items())
        raise Invalid(f"Invalid model parameters: {summary}.", details=problems)
    return params


def _response_format_error(value) -> str | None:
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMAT_TYPES:
        return f"must be an object whose type is one of {', '.join(sorted(RESPONSE_FORMAT_TYPES))}"
    if value["type"] == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
            return 'of type json_schema needs "json_schema": {"name": ..., "schema": {...}}'
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(spec["schema"])
        except SchemaError as exc:
            return f"has an invalid JSON schema: {exc.message}"
    return None
