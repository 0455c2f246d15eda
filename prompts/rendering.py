"""Rendering prompt templates safely: Jinja2's immutable sandbox, strict undefined, bounded.

A template can read the variables it is given and nothing else: no attribute starting
with an underscore, no mutation, no `str.format`, no output or loop larger than the
limits, no render slower than the time limit. Snippets are composed with
`{% include "name" %}` (the snippet's production version if it has one, else its latest),
`{% include "name@staging" %}` (a label) or `{% include "name@3" %}` (a version), always
within the prompt's own project.
"""

import contextvars
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.filters import do_center, do_format, do_indent, do_wordwrap
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptlab.errors import Invalid

MAX_INCLUDE_DEPTH = 5
MAX_WIDTH = 1000  # for filters that pad or wrap to a width
_INCLUDE = re.compile(r"^(?P<name>[-a-zA-Z0-9_]+)(?:@(?P<pin>[-a-zA-Z0-9_]+))?$")
_WIDTH_IN_FORMAT = re.compile(r"%[-#0 +]*(\d+)?(?:\.(\d+))?")

# Set for the duration of one render: the project whose snippets includes may use, and
# the deadline the loops check.
_project_id: contextvars.ContextVar[int] = contextvars.ContextVar("prompt_project_id")
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("prompt_render_deadline", default=float("inf"))


class RenderError(Invalid):
    code = "render_error"


@dataclass(frozen=True)
class Rendered:
    version: int | None
    text: str | None = None  # text prompts
    messages: list[dict] | None = None  # chat prompts
    warnings: list[str] = field(default_factory=list)


# --- The environment --------------------------------------------------------------------


def _check_time() -> None:
    if time.monotonic() > _deadline.get():
        raise SecurityError(f"the render took longer than {settings.PROMPT_RENDER_TIMEOUT_SECONDS:g}s")


def _guarded_range(*args):
    """range() that is bounded in length and checks the render deadline as it goes."""
    numbers = range(*args)
    if len(numbers) > settings.PROMPT_RENDER_MAX_ITEMS:
        raise SecurityError(f"range() is limited to {settings.PROMPT_RENDER_MAX_ITEMS} items")
    for index, number in enumerate(numbers):
        if index % 256 == 0:
            _check_time()
        yield number


def _capped(filter_function, position: int, name: str):
    """Wrap a filter whose argument at `position` is a width, so it cannot allocate gigabytes."""

    def capped(*args, **kwargs):
        width = kwargs.get(name, args[position] if len(args) > position else 0)
        if isinstance(width, int) and width > MAX_WIDTH:
            raise SecurityError(f"the {filter_function.__name__.removeprefix('do_')} width is limited to {MAX_WIDTH}")
        return filter_function(*args, **kwargs)

    return capped


def _format(value, *args, **kwargs):
    for width, precision in _WIDTH_IN_FORMAT.findall(str(value)):
        if int(width or 0) > MAX_WIDTH or int(precision or 0) > MAX_WIDTH:
            raise SecurityError(f"format widths are limited to {MAX_WIDTH}")
    return do_format(value, *args, **kwargs)


class PromptEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if hasattr(sized, "__len__") and isinstance(times, int) and len(sized) * times > settings.PROMPT_RENDER_MAX_CHARS:
                    raise SecurityError("the result of * would be too large")
        if operator == "**" and isinstance(right, (int, float)) and (abs(right) > 100 or abs(left) > 10**6):
            raise SecurityError("the result of ** would be too large")
        if operator == "%" and isinstance(left, str):
            return _format(left, *(right if isinstance(right, tuple) else (right,)))
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value):
        if getattr(value, "__self__", None).__class__ is str and getattr(value, "__name__", "") in ("format", "format_map"):
            raise SecurityError("str.format is not available in prompts; use {{ variable }} or the format filter")
        return super().wrap_str_format(value)

    def get_template(self, name, parent=None, globals=None):
        # Includes resolve inside the project being rendered; the name carries it so that
        # the template cache never mixes two projects' snippets.
        if isinstance(name, str) and "/" not in name:
            name = f"{_project_id.get()}/{name}"
        return super().get_template(name, None, globals)


class SnippetLoader(BaseLoader):
    """Loads `{% include %}` targets from the prompts of the project being rendered."""

    def get_source(self, environment, template):
        project_id, _, reference = template.partition("/")
        version = resolve_include(int(project_id), reference)
        source = version.source_text()
        # Labels move; and a recreated database may reuse ids: re-check what the name means now.
        return source, template, lambda: resolve_include(int(project_id), reference).source_text() == source


def _environment() -> PromptEnvironment:
    env = PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, loader=SnippetLoader(), keep_trailing_newline=True,
        cache_size=2000, auto_reload=True,
    )  # fmt: skip
    env.globals = {"range": _guarded_range, "dict": dict}
    env.filters["center"] = _capped(do_center, 1, "width")
    env.filters["indent"] = _capped(do_indent, 1, "width")
    env.filters["wordwrap"] = _capped(do_wordwrap, 2, "width")
    env.filters["format"] = _format
    return env


ENV = _environment()


# --- Parsing and validation -----------------------------------------------------------


def parse(source: str, where: str):
    """The template's syntax tree, or RenderError naming the place and line."""
    try:
        return ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{where}, line {exc.lineno}: {exc.message}", details={"where": where, "line": exc.lineno}) from None


def includes_of(tree, where: str) -> list[str]:
    """The literal names a template includes; a computed include name is refused."""
    names = []
    for node in tree.find_all(nodes.Include):
        target = node.template
        if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
            raise RenderError(f"{where}, line {node.lineno}: include needs a literal prompt name, like {{% include \"signature\" %}}.")
        if not _INCLUDE.match(target.value):
            raise RenderError(
                f"{where}, line {node.lineno}: {target.value!r} is not a prompt name "
                "(use name, name@label or name@version)."
            )
        names.append(target.value)
    return names


def variables_of(tree) -> set[str]:
    return meta.find_undeclared_variables(tree)


def resolve_include(project_id: int, reference: str):
    """The historical version an include names, or TemplateNotFound."""
    from prompts import selectors

    match = _INCLUDE.match(reference)
    if not match:
        raise TemplateNotFound(reference)
    version = selectors.version_for_include(project_id=project_id, name=match["name"], pin=match["pin"])
    if version is None:
        raise TemplateNotFound(reference)
    return version


# --- Rendering -----------------------------------------------------------------------

_compiled: OrderedDict = OrderedDict()


def _template(source: str, cache_key):
    """Compile once per (prompt, version, part); previews of unsaved text compile every time."""
    if cache_key is None:
        return ENV.from_string(source)
    cached = _compiled.get(cache_key)
    # The source is compared too, so a reused id (a recreated database) never serves stale text.
    if cached is not None and (cached[0] is source or cached[0] == source):
        return cached[1]
    template = ENV.from_string(source)
    _compiled[cache_key] = (source, template)
    if len(_compiled) > 5000:
        _compiled.popitem(last=False)
    return template


def render_template(source: str, variables: dict, *, project_id: int, cache_key=None) -> str:
    """Render one template with the limits in force; every failure is a RenderError."""
    project_token = _project_id.set(project_id)
    deadline_token = _deadline.set(time.monotonic() + settings.PROMPT_RENDER_TIMEOUT_SECONDS)
    limit = settings.PROMPT_RENDER_MAX_CHARS
    try:
        chunks, size = [], 0
        for chunk in _template(source, cache_key).generate(variables):
            size += len(chunk)
            if size > limit:
                raise SecurityError(f"the rendered text is longer than {limit} characters")
            _check_time()
            chunks.append(chunk)
        return "".join(chunks)
    except UndefinedError as exc:
        raise RenderError(f"Undefined variable: {exc.message}.") from None
    except TemplateNotFound as exc:
        raise RenderError(f"Included prompt {exc.name.partition('/')[2] or exc.name!r} does not exist.") from None
    except SecurityError as exc:
        raise RenderError(f"Refused: {str(exc).rstrip('.')}.") from None
    except RecursionError:
        raise RenderError(f"Includes or macros nest too deeply (the limit is {MAX_INCLUDE_DEPTH} includes).") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise RenderError(f"The template failed: {type(exc).__name__}: {exc}") from None
    finally:
        _deadline.reset(deadline_token)
        _project_id.reset(project_token)


def render_version(record, variables: dict | None) -> Rendered:
    """Render a prompt version (a historical record, or an unsaved prompt for a preview).

    Declared defaults fill in; every missing variable is named at once; unknown variables
    are refused in strict mode and reported as warnings otherwise.
    """
    from prompts.validation import variable_type_errors

    values = dict(variables or {})
    declared = {spec["name"]: spec for spec in record.variables or []}
    for name, spec in declared.items():
        if name not in values and spec.get("default") is not None:
            values[name] = spec["default"]
    optional = {name for name, spec in declared.items() if spec.get("required") is False}
    needed = (set(record.used_variables) - optional) | {name for name, spec in declared.items() if name not in optional}
    missing = sorted(needed - values.keys())
    if missing:
        raise RenderError(f"Missing variables: {', '.join(missing)}.", details={"missing": missing})
    unknown = sorted(values.keys() - set(record.used_variables) - declared.keys())
    if unknown and record.strict_variables:
        raise RenderError(
            f"Unknown variables: {', '.join(unknown)} (this prompt uses: {', '.join(record.used_variables) or 'none'}).",
            details={"unknown": unknown},
        )
    if type_errors := variable_type_errors(list(declared.values()), values):
        raise RenderError(f"Wrong variable types: {'; '.join(type_errors)}.", details={"types": type_errors})
    for name in optional - values.keys():
        values[name] = None
    warnings = [f"Unknown variables ignored: {', '.join(unknown)}."] if unknown else []
    version = record.version or None
    key = (record.id, version) if version else None

    def render(source, part):
        return render_template(source, values, project_id=record.project_id, cache_key=key and (*key, part))

    if record.kind == "text":
        return Rendered(version=version, text=render(record.template, 0), warnings=warnings)
    messages = []
    for part, message in enumerate(record.messages):
        if "placeholder" in message:
            messages.extend(_placeholder_messages(message["placeholder"], values.get(message["placeholder"])))
        else:
            messages.append({"role": message["role"], "content": render(message["content"], part)})
    return Rendered(version=version, messages=messages, warnings=warnings)


def _placeholder_messages(name: str, value) -> list[dict]:
    if value is None:
        return []
    valid = isinstance(value, list) and all(
        isinstance(m, dict) and m.get("role") in {"system", "user", "assistant", "tool"} and isinstance(m.get("content"), str)
        for m in value
    )
    if not valid:
        raise RenderError(f'The variable {name} must be a list of messages: [{{"role": "user", "content": "..."}}, ...].')
    return [{"role": m["role"], "content": m["content"]} for m in value]
