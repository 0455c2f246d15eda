"""Checks every prompt version passes before it is saved, on every save path.

All problems are collected and raised together as one Invalid whose details map each
field (template, messages, params, variables, endpoint) to its message.
"""

from promptlab.errors import Invalid
from promptlab.llm.models import ModelEndpoint
from promptlab.llm.params import validate_params
from prompts import rendering
from prompts.models import Kind

ROLES = {"system", "user", "assistant"}
VARIABLE_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool, "list": list, "object": dict}


def validate_prompt(prompt) -> list[str]:
    """Return the sorted names of the variables the prompt uses, or raise Invalid with every problem."""
    problems: dict[str, str] = {}
    used: set[str] = set()
    _check_shape(prompt, problems)
    if "messages" not in problems and "template" not in problems and "kind" not in problems:
        try:
            used = template_variables(prompt)
        except Invalid as exc:
            problems["template" if prompt.kind == Kind.TEXT else "messages"] = exc.message
    try:
        validate_params(prompt.params)
    except Invalid as exc:
        problems["params"] = exc.message
    if error := _variables_error(prompt.variables):
        problems["variables"] = error
    endpoint = ModelEndpoint.objects.filter(pk=prompt.endpoint_id).first()
    if endpoint is None:
        problems["endpoint"] = "Pick a model from the catalog."
    elif not endpoint.enabled:
        problems["endpoint"] = f"The model {endpoint} is disabled."
    if problems:
        raise Invalid(" ".join(f"{field}: {message}" for field, message in problems.items()), details=problems)
    return sorted(used)


def template_variables(prompt) -> set[str]:
    """The variables the prompt's templates, placeholders and included snippets use; Invalid
    for a syntax error, a bad or unknown include, a cycle or nesting that is too deep."""
    used = set(prompt.placeholders())
    for where, source in prompt.parts():
        tree = rendering.parse(source, where)
        used |= rendering.variables_of(tree, where)
        used |= _check_includes(prompt, rendering.includes_of(tree, where), depth=1, path=[prompt.name])
    return used


def _check_shape(prompt, problems: dict) -> None:
    if prompt.kind == Kind.TEXT:
        if not (prompt.template or "").strip():
            problems["template"] = "A text prompt needs a template."
        return
    if prompt.kind != Kind.CHAT:
        problems["kind"] = "Choose text or chat."
        return
    messages = prompt.messages
    if not isinstance(messages, list) or not messages:
        problems["messages"] = "A chat prompt needs at least one message."
        return
    for number, message in enumerate(messages, start=1):
        if isinstance(message, dict) and set(message) == {"placeholder"} and str(message["placeholder"]).isidentifier():
            continue
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            problems["messages"] = (
                f"Message {number} must be {{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}} "
                'or {"placeholder": "variable_name"}.'
            )
            return


def _check_includes(prompt, names: list[str], *, depth: int, path: list[str]) -> set[str]:
    """Resolve every include now, refusing unknown targets, cycles and nesting deeper than the limit;
    return the variables the included snippets use."""
    used = set()
    for reference in names:
        target = reference.partition("@")[0]
        if target in path:
            raise Invalid(rendering.include_cycle_message([*path, target]))
        if depth > rendering.MAX_INCLUDE_DEPTH:
            raise Invalid(f"Includes nest deeper than {rendering.MAX_INCLUDE_DEPTH} levels: {' → '.join([*path, target])}.")
        try:
            version = rendering.resolve_include(prompt.project_id, reference)
        except rendering.TemplateNotFound:
            raise Invalid(f"The included prompt {reference!r} does not exist in this project.") from None
        where = f"Included prompt {reference}"
        tree = rendering.parse(version.source_text(), where)
        used |= rendering.variables_of(tree, where)
        used |= _check_includes(prompt, rendering.includes_of(tree, reference), depth=depth + 1, path=[*path, target])
    return used


def _variables_error(variables) -> str | None:
    if not isinstance(variables, list):
        return "Declare variables as a list of objects."
    seen = set()
    for number, spec in enumerate(variables, start=1):
        if not isinstance(spec, dict) or not str(spec.get("name", "")).isidentifier():
            return f"Variable {number} needs a name that is a valid identifier."
        unknown = set(spec) - {"name", "type", "required", "default", "description"}
        if unknown:
            return f"Variable {spec['name']!r} has unknown keys: {', '.join(sorted(unknown))}."
        if spec.get("type", "string") not in VARIABLE_TYPES:
            return f"Variable {spec['name']!r} has type {spec.get('type')!r}; use one of {', '.join(VARIABLE_TYPES)}."
        if spec["name"] in seen:
            return f"Variable {spec['name']!r} is declared twice."
        seen.add(spec["name"])
    return None


def variable_type_errors(declared: list[dict], values: dict) -> list[str]:
    """Names the values whose type differs from the declared one."""
    errors = []
    for spec in declared:
        expected = VARIABLE_TYPES[spec.get("type", "string")]
        value = values.get(spec["name"])
        if value is not None and (not isinstance(value, expected) or (expected in (int, (int, float)) and isinstance(value, bool))):
            errors.append(f"{spec['name']} must be {spec.get('type', 'string')}")
    return errors
