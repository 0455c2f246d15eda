"""Rendering prompt templates safely: Jinja2's immutable sandbox, strict undefined, bounded.

A template can read the variables it is given and nothing else: no attribute starting
with an underscore, no mutation, no `str.format`, no variable, output, loop or value
built on the way larger than the limits, no render slower than the time limit, and no
more renders at once in a process than it has render slots. Snippets are composed with
`{% include "name" %}` (the snippet's production version if it has one, else its latest),
`{% include "name@staging" %}` (a label) or `{% include "name@v3" %}` (a version, `@3` too), always
within the prompt's own project.
"""

import contextlib
import contextvars
import functools
import re
import textwrap
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from jinja2 import StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.compiler import CodeGenerator
# The sync_ variants: Jinja's plain names are async-aware wrappers that take the eval context first.
from jinja2.filters import do_batch, do_center, do_format, do_indent, do_replace, sync_do_join, sync_do_slice
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_environment, pass_eval_context

from promptlab.errors import Invalid

MAX_INCLUDE_DEPTH = 5
MAX_WIDTH = 1000  # for filters that pad or wrap to a width
_INCLUDE = re.compile(r"^(?P<name>[-a-zA-Z0-9_]+)(?:@(?P<pin>[-a-zA-Z0-9_]+))?$")
_WIDTH_IN_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")

MAX_INCLUDES_PER_RENDER = 100  # each include is a database lookup: bounds a wide fan-out of snippets
# How long a render waits for one of the process's PROMPT_RENDER_CONCURRENCY slots before it is
# refused as busy: short, so that waiting requests cannot hold every web thread for long.
RENDER_SLOT_WAIT_SECONDS = 1.0


@dataclass
class _Includes:
    """The includes of one render."""

    loads: int = 0
    stack: list[tuple[int, int]] = field(default_factory=list)  # (prompt id, version) now rendering, outermost first
    names: dict[tuple[int, int], str] = field(default_factory=dict)  # to name a cycle without a query


@dataclass
class _Render:
    """One render (of every message of a chat prompt): when it must end, and how much it has printed."""

    deadline: float
    printed: int = 0


# Set for the duration of one render: the project whose snippets includes may use, the
# deadline and output the loops and filters check, and the includes so far.
_project_id: contextvars.ContextVar[int] = contextvars.ContextVar("prompt_project_id")
_render: contextvars.ContextVar[_Render | None] = contextvars.ContextVar("prompt_render", default=None)
_includes: contextvars.ContextVar[_Includes] = contextvars.ContextVar("prompt_render_includes")


class RenderError(Invalid):
    code = "render_error"


class RenderBusy(RenderError):
    """Every render slot of this process stayed taken: the API answers 503 with Retry-After."""

    code = "render_busy"

    @property
    def retry_after(self) -> float:
        return settings.PROMPT_RENDER_TIMEOUT_SECONDS  # by then every render holding a slot has ended


@dataclass(frozen=True)
class Rendered:
    version: int | None
    text: str | None = None  # text prompts
    messages: list[dict] | None = None  # chat prompts
    warnings: list[str] = field(default_factory=list)


# --- The environment --------------------------------------------------------------------
#
# The sandbox stops attribute access to internals; these bounds stop the rest. The variables
# are bounded when the render starts, so the work of every step is bounded by its input:
# every block (loop bodies included) checks the deadline; every concatenation, +, *, **, %,
# string method and filter that builds text or a list checks the size of what it would
# build *before* building it; filters that read a whole list (sort, unique, join, ...)
# measure it first; and what a macro or block collects is bounded as it grows.


def _check_time() -> None:
    render = _render.get()
    if render is not None and time.monotonic() > render.deadline:
        raise SecurityError(f"the render took longer than {settings.PROMPT_RENDER_TIMEOUT_SECONDS:g}s")


def _check_size(size: int, what: str) -> None:
    if size > settings.PROMPT_RENDER_MAX_CHARS:
        raise SecurityError(f"{what} would be longer than {settings.PROMPT_RENDER_MAX_CHARS} characters")


def _check_count(count: int, what: str) -> None:
    if count > settings.PROMPT_RENDER_MAX_ITEMS:
        raise SecurityError(f"{what} is limited to {settings.PROMPT_RENDER_MAX_ITEMS} items")


def _estimate(value, limit: int) -> int:
    """Characters `value` prints as, counted without building it; stops once past `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, dict):
            total += 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 5  # at least its digits and sign, or True / False
        else:
            total += 24  # a float, None, an object's short repr
    return total


def _check_printable(value, what: str):
    _check_size(_estimate(value, settings.PROMPT_RENDER_MAX_CHARS), what)
    return value


def _collected(value, what: str):
    """`value` for a filter that reads all of it, refused when it would print longer than the
    limit. A lazy value (a map, a select, a dict view) is collected item by item and refused as
    soon as it grows past the limit; the filter then gets an iterator over what was collected."""
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)) or not hasattr(value, "__iter__"):
        return _check_printable(value, what)
    limit = settings.PROMPT_RENDER_MAX_CHARS
    items, size = [], 0
    for item in value:
        size += 2 + _estimate(item, limit)
        _check_size(size, what)
        _check_time()
        items.append(item)
    return iter(items)


def _guarded_range(*args):
    numbers = range(*args)
    _check_count(len(numbers), "range()")
    return numbers


def _width(value, name: str) -> None:
    if isinstance(value, int) and value > MAX_WIDTH or isinstance(value, str) and len(value) > MAX_WIDTH:
        raise SecurityError(f"the {name} width is limited to {MAX_WIDTH}")


def _capped(filter_function, position: int, name: str, check=_width):
    """Wrap a filter so that its argument at `position` (or keyword `name`) is bounded."""

    @functools.wraps(filter_function)  # keeps Jinja's pass_environment / pass_eval_context marks
    def capped(*args, **kwargs):
        check(kwargs.get(name, args[position] if len(args) > position else 0), filter_function.__name__.removeprefix("sync_").removeprefix("do_"))
        return filter_function(*args, **kwargs)

    return capped


def _count(value, name: str) -> None:
    if isinstance(value, int):
        _check_count(value, f"the {name} count")


def _check_format(text, arguments) -> None:
    """Refuse *-widths and widths over the limit in a printf-style format (str or bytes), and a
    result longer than the limit: the format, what its widths pad to, and its arguments printed."""
    text = text.decode("latin-1") if isinstance(text, bytes) else str(text)
    padding = 0
    for star_or_width, precision in _WIDTH_IN_FORMAT.findall(text):
        for number in (star_or_width, precision):
            if number == "*":
                raise SecurityError("* widths are not allowed in formats")
            if number and int(number) > MAX_WIDTH:
                raise SecurityError(f"format widths are limited to {MAX_WIDTH}")
            padding += int(number or 0)
    _check_size(len(text) + padding + _estimate(arguments, settings.PROMPT_RENDER_MAX_CHARS), "the formatted text")


def _format(value, *args, **kwargs):
    _check_format(value, [args, kwargs])
    return do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx, value, d="", attribute=None):
    items = list(value)  # already measured: join reads its whole value
    _check_size(len(str(d)) * len(items) + _estimate(items, settings.PROMPT_RENDER_MAX_CHARS), "the joined text")
    return sync_do_join(eval_ctx, items, d, attribute)


def _indent(s, width=4, first=False, blank=False):
    """Jinja's indent, with the indented text's size checked first: each line gains the indent."""
    _width(width, "indent")
    text = str(s)
    indention = width if isinstance(width, str) else " " * width
    _check_size(len(text) + (len(text.splitlines()) + 1) * len(indention), "the indented text")
    return do_indent(s, width, first, blank)


@pass_environment
def _wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    """Jinja's wordwrap, bounded. textwrap breaks a long word by copying what is left of it for
    every line, so a word may be at most MAX_WIDTH times the width; and the wrapped text, the
    wrap string between every two lines included, is measured before it is joined."""
    _width(width, "wordwrap")
    text = str(s)
    longest = max(map(len, text.split()), default=0)
    if break_long_words and isinstance(width, int) and longest > MAX_WIDTH * max(width, 1):
        raise SecurityError(f"the wordwrap width {width} is too narrow for a {longest}-character word "
                            f"(a word may be at most {MAX_WIDTH} times the width)")  # fmt: skip
    wrapstring = environment.newline_sequence if wrapstring is None else str(wrapstring)
    paragraphs = []  # as Jinja wraps: each line of the text on its own
    for line in text.splitlines():
        _check_time()
        paragraphs.append(textwrap.wrap(line, width=width, expand_tabs=False, replace_whitespace=False,
                                        break_long_words=break_long_words, break_on_hyphens=break_on_hyphens))  # fmt: skip
    joins = sum(max(len(lines) - 1, 0) for lines in paragraphs) + max(len(paragraphs) - 1, 0)
    _check_size(sum(len(line) for lines in paragraphs for line in lines) + joins * len(wrapstring), "the wrapped text")
    return wrapstring.join(wrapstring.join(lines) for lines in paragraphs)


@pass_eval_context
def _replace(eval_ctx, s, old, new, count=None):
    text = str(s)
    _check_size(len(text) + text.count(str(old)) * len(str(new)), "the replaced text")
    return do_replace(eval_ctx, s, old, new, count)


STRING_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
REFUSED_METHODS = {"translate", "maketrans", "format", "format_map"}


class _Output(list):
    """What a macro, a call block, or a set or filter block prints, collected until it ends:
    bounded as it grows, like the render's own output."""

    size = 0

    def append(self, text):
        self.size += len(text)
        _check_size(self.size, "the text of a block")
        super().append(text)

    def extend(self, texts):
        for text in texts:
            self.append(text)


def _concat(texts) -> str:
    """Environment.concat: joins what a block collected, or what a block reference (`self.name()`) prints."""
    if not isinstance(texts, _Output):
        collected, texts = texts, _Output()
        texts.extend(collected)
    return "".join(texts)


class BoundedCodeGenerator(CodeGenerator):
    """Compiles every block to check the render deadline first, every `~` to check the size
    of what it joins, and every block that collects its output to collect it bounded."""

    def blockvisit(self, nodes, frame):
        self.writeline("environment.check_deadline()")
        super().blockvisit(nodes, frame)

    def buffer(self, frame):
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")

    def visit_Concat(self, node, frame):
        self.write("environment.checked_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class PromptEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(_concat)
    output_buffer = _Output

    @staticmethod
    def check_deadline() -> None:
        _check_time()

    @staticmethod
    def checked_concat(parts) -> str:
        limit = settings.PROMPT_RENDER_MAX_CHARS
        _check_size(sum(_estimate(part, limit) for part in parts), "the joined text")  # before str() builds them
        strings = [str(part) for part in parts]
        _check_size(sum(map(len, strings)), "the joined text")
        return "".join(strings)

    def call_binop(self, context, operator, left, right):
        if operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            _check_size(len(left) + len(right), "the result of +")
            if isinstance(left, (list, tuple)):
                limit = settings.PROMPT_RENDER_MAX_CHARS
                _check_size(_estimate(left, limit) + _estimate(right, limit), "the result of +")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if hasattr(sized, "__len__") and isinstance(times, int):
                    _check_size(len(sized) * times, "the result of *")
                    if isinstance(sized, (list, tuple)):
                        _check_size(_estimate(sized, settings.PROMPT_RENDER_MAX_CHARS) * times, "the result of *")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 4096:
                raise SecurityError("the result of * would be too large")
        if operator == "**" and isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if abs(right) > 100 or (isinstance(left, int) and left.bit_length() * abs(right) > 4096):
                raise SecurityError("the result of ** would be too large")
        if operator == "%" and isinstance(left, (str, bytes)):
            _check_format(left, right)
        try:
            return super().call_binop(context, operator, left, right)
        except OverflowError:
            raise SecurityError(f"the result of {operator} would be too large") from None

    def wrap_str_format(self, value):
        if getattr(value, "__name__", "") in ("format", "format_map") and isinstance(getattr(value, "__self__", None), str):
            raise SecurityError("str.format is not available in prompts; use {{ variable }} or the format filter")
        return super().wrap_str_format(value)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's signature)
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if isinstance(owner, (str, bytes)):
            if name in REFUSED_METHODS:
                raise SecurityError(f"str.{name} is not available in prompts")
            if name in STRING_WIDTH_METHODS and args:
                _width(args[0], name)
            if name == "join":
                items = list(_collected(args[0], "the joined text")) if args else []
                _check_size(len(owner) * len(items) + _estimate(items, settings.PROMPT_RENDER_MAX_CHARS), "the joined text")
                args = (items, *args[1:])
            if name == "expandtabs":
                _check_size(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * (args[0] if args else 8), "the expanded text")
            if name == "replace" and len(args) >= 2:
                _check_size(len(owner) + owner.count(args[0]) * len(args[1]), "the replaced text")
        result = super().call(__context, __obj, *args, **kwargs)
        if hasattr(result, "__len__") and not isinstance(result, dict):
            _check_size(len(result), f"the result of {name or 'a call'}")
        return result

    def _load_template(self, name, globals):
        """Every include, extends and import lands here: resolve the name in the project being
        rendered, now (labels move), and refuse a version already being rendered."""
        if not isinstance(name, str) or not _INCLUDE.match(name):
            raise TemplateNotFound(str(name))
        includes = _includes.get()
        includes.loads += 1
        if includes.loads > MAX_INCLUDES_PER_RENDER:
            raise SecurityError(f"more than {MAX_INCLUDES_PER_RENDER} includes in one render")
        version = resolve_include(_project_id.get(), name)
        identity = (version.id, version.version)
        includes.names[identity] = version.name
        # Saving refuses cycles, but labels move afterwards. The include statement runs inside
        # the render of the template that holds it, so the stack is exactly the chain of
        # includes that leads here: meeting this version on it is a cycle, found before
        # another lookup. A snippet included twice side by side (a diamond, a loop) has left
        # the stack by the time it is included again.
        if identity in includes.stack:
            on_cycle = includes.stack[includes.stack.index(identity) :]
            cycle = [includes.names.get(entry, "this prompt") for entry in on_cycle] + [version.name]
            raise RenderError(include_cycle_message(cycle), details={"cycle": cycle})
        return _template(version.source_text(), (*identity, 0))


def _on_include_stack(render, identity: tuple[int, int]):
    """Wrap a compiled template's root render function (what every include, extends and
    import calls) so that the version is on the include stack exactly while it renders."""

    def root(context):
        stack = _includes.get().stack  # kept, so a generator closed after the render pops its own stack
        stack.append(identity)
        try:
            yield from render(context)
        finally:
            stack.pop()

    return root


# Every builtin filter of Jinja (jinja2.filters.FILTERS), by what bounds it. Only these are
# available, so a Jinja upgrade adds no filter unreviewed. Every filter's text result is
# checked too, so a chain of filters that each grow their text by a factor (escape,
# urlencode, upper) stops at the limit. The tests (jinja2.tests.TESTS) all take constant
# time, or time linear in a value already bounded (`in`, `==`), and build nothing.
TEXT_FILTERS = frozenset({
    "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower", "pprint", "replace", "string",
    "striptags", "title", "tojson", "trim", "truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
})  # turn their value into text (linear in it, or padded to a bounded width): its printed size is checked first
WHOLE_FILTERS = frozenset({
    "batch", "dictsort", "groupby", "join", "list", "max", "min", "reverse", "slice", "sort", "sum", "unique",
})  # read their whole value (sort and groupby in n log n): measured first, a lazy value collected up to the limit
PLAIN_FILTERS = frozenset({
    "abs", "attr", "count", "d", "default", "filesizeformat", "first", "float", "int", "items", "last", "length", "map",
    "random", "reject", "rejectattr", "round", "safe", "select", "selectattr",
})  # a number, one item, a length, or lazy (map, select: each item goes through a bounded filter or test)


def _bounded(filter_function, name: str):
    """Wrap a builtin filter: its value measured first (TEXT_FILTERS, WHOLE_FILTERS), its text result checked."""
    measure = _check_printable if name in TEXT_FILTERS else _collected if name in WHOLE_FILTERS else None
    at = 1 if getattr(filter_function, "jinja_pass_arg", None) else 0  # the value follows the environment or context

    @functools.wraps(filter_function)  # keeps Jinja's pass_environment / pass_eval_context marks
    def bounded(*args, **kwargs):
        if measure and len(args) > at:
            args = (*args[:at], measure(args[at], f"the {name} filter's input"), *args[at + 1 :])
        result = filter_function(*args, **kwargs)
        if isinstance(result, str):
            _check_size(len(result), f"the text of the {name} filter")
        return result

    return bounded


def _environment() -> PromptEnvironment:
    env = PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, cache_size=0,  # _template caches
        finalize=lambda value: _check_printable(value, "the printed value"),
    )  # fmt: skip
    env.globals = {"range": _guarded_range}
    env.filters.update(
        center=_capped(do_center, 1, "width"),
        indent=_indent,
        wordwrap=_wordwrap,
        batch=_capped(do_batch, 1, "linecount", _count),
        slice=_capped(sync_do_slice, 1, "slices", _count),
        join=_join,
        replace=_replace,
        format=_format,
    )  # fmt: skip
    env.filters = {name: _bounded(env.filters[name], name) for name in TEXT_FILTERS | WHOLE_FILTERS | PLAIN_FILTERS}
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
    """The literal names a template includes; a computed include name is refused, and so are
    extends and import, which could load templates past the include rules."""
    for node in tree.find_all((nodes.Extends, nodes.Import, nodes.FromImport)):
        raise RenderError(f"{where}, line {node.lineno}: only {{% include %}} composes prompts; extends and import are not available.")
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


def variables_of(tree, where: str) -> set[str]:
    """The variables the template reads; RenderError for what only compiling finds (an unknown filter or test)."""
    try:
        return meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{where}, line {exc.lineno}: {exc.message}", details={"where": where, "line": exc.lineno}) from None


def include_cycle_message(names: list[str]) -> str:
    """How a cycle is named, the first name repeated last: "Include cycle: a → b → a."."""
    return f"Include cycle: {' → '.join(names)}."


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
    """Compile once per (prompt id, version, part); previews of unsaved text compile every time."""
    if cache_key is None:
        return ENV.from_string(source)
    cached = _compiled.get(cache_key)
    # The source is compared too, so a reused id (a recreated database) never serves stale text.
    if cached is not None and (cached[0] is source or cached[0] == source):
        return cached[1]
    template = ENV.from_string(source)
    template.root_render_func = _on_include_stack(template.root_render_func, cache_key[:2])
    _compiled[cache_key] = (source, template)
    if len(_compiled) > 5000:
        _compiled.popitem(last=False)
    return template


_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def _render_slots() -> threading.BoundedSemaphore:
    """This process's render slots, PROMPT_RENDER_CONCURRENCY of them: renders beyond them wait,
    so a web process always has threads left for other requests (/healthz)."""
    global _slots
    count = getattr(settings, "PROMPT_RENDER_CONCURRENCY", 2)
    with _slots_lock:
        if _slots is None or _slots[0] != count:  # made anew when the setting changes (tests)
            _slots = (count, threading.BoundedSemaphore(count))
        return _slots[1]


def _check_variables(variables: dict) -> None:
    """Refuse, naming them, variables that would print longer than the limit: every step of a
    render then works on bounded input, so bounding what each step builds bounds its time."""
    limit = settings.PROMPT_RENDER_MAX_CHARS
    too_large = sorted(str(name) for name, value in variables.items() if _estimate(value, limit) > limit)
    if too_large:
        raise RenderError(
            f"Variables too large: {', '.join(too_large)} (each may be at most {limit} characters).",
            details={"too_large": too_large},
        )


@contextlib.contextmanager
def _one_render(variables: dict):
    """The bounds of one render, shared by every message of a chat prompt: its variables'
    sizes, a render slot of this process, one deadline and one output size."""
    if _render.get() is not None:  # a message of the chat prompt being rendered
        yield
        return
    _check_variables(variables)
    slots = _render_slots()
    if not slots.acquire(timeout=RENDER_SLOT_WAIT_SECONDS):
        timeout = settings.PROMPT_RENDER_TIMEOUT_SECONDS
        raise RenderBusy(
            f"Rendering is busy: every render slot of this server stayed taken for {RENDER_SLOT_WAIT_SECONDS:g}s. "
            f"Try again in {timeout:g}s.",
            details={"retry_after": timeout},
        )
    token = _render.set(_Render(deadline=time.monotonic() + settings.PROMPT_RENDER_TIMEOUT_SECONDS))
    try:
        yield
    finally:
        _render.reset(token)
        slots.release()


def render_template(source: str, variables: dict, *, project_id: int, cache_key=None, name: str | None = None) -> str:
    """Render one template with the limits in force; every failure is a RenderError.
    `name` is the prompt's name when `cache_key` says which version this is."""
    with _one_render(variables):
        return _render_template(source, variables, project_id=project_id, cache_key=cache_key, name=name)


def _render_template(source: str, variables: dict, *, project_id: int, cache_key, name: str | None) -> str:
    project_token = _project_id.set(project_id)
    includes = _Includes()
    if cache_key is not None and name is not None:
        includes.names[cache_key[:2]] = name
    includes_token = _includes.set(includes)
    render, limit = _render.get(), settings.PROMPT_RENDER_MAX_CHARS
    try:
        chunks = []
        for chunk in _template(source, cache_key).generate(variables):
            render.printed += len(chunk)
            if render.printed > limit:
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
    # AssertionError: some filters assert on their arguments (truncate's length and end).
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError, AssertionError) as exc:
        raise RenderError(f"The template failed: {type(exc).__name__}: {exc}") from None
    finally:
        _includes.reset(includes_token)
        _project_id.reset(project_token)


def render_version(record, variables: dict | None) -> Rendered:
    """Render a prompt version (a historical record, or an unsaved prompt for a preview).

    Declared defaults fill in; every missing variable is named at once; unknown variables
    are refused in strict mode and reported as warnings otherwise. Every message of a chat
    prompt renders within the same limits: one render slot, deadline and output size.
    """
    with _one_render(variables or {}):
        return _render_version(record, dict(variables or {}))


def _render_version(record, values: dict) -> Rendered:
    from prompts.validation import variable_type_errors

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
        return render_template(source, values, project_id=record.project_id, cache_key=key and (*key, part), name=record.name)

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
