"""Known Jinja2 sandbox escapes and abuses: each is refused with a RenderError that says why.

Every case of the corpus renders under the same watch: an audit hook that fails the case
if the render starts a process, opens a socket or writes a file; the variables it was given
must come back unchanged (the sandbox is immutable); and settings.SECRET_KEY never appears
in what it prints or in the error. How long each case takes and how much it allocates is
measured by bench/bench_render_limits.py.
"""

import sys
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from prompts import services
from prompts.rendering import RenderError, render_template, render_version
from tests.factories import MembershipFactory, ModelEndpointFactory

SECRET_KEY = "canary-secret-key-0f3a9c2e-never-rendered"
TIMEOUT = 0.5  # PROMPT_RENDER_TIMEOUT_SECONDS for the cases that the time limit must stop
ROOMY = 60  # for every other case: a loaded machine must not let the clock win the race to refuse it


def squarings(times: int) -> str:
    return "{% set a = 1000000 ** 100 %}" + "{% set a = a * a %}" * times + "{{ a > 0 }}"


def doublings(start: str, operator: str, times: int) -> str:
    return f"{{% set a = {start} %}}" + f"{{% set a = a {operator} a %}}" * times + "{{ a|length }}"


def variables() -> dict:
    """What every case is given; a fresh copy each time, so a mutation shows."""
    return {"x": "abc", "name": "Ada", "items": [1, 2], "data": {"a": 1}, "rows": [[1], [2]]}


@dataclass(frozen=True)
class Case:
    id: str
    template: str
    fragment: str  # part of the RenderError's message

    def param(self):
        return pytest.param(self.template, self.fragment, id=self.id)



CORPUS = [
    # Reaching Python internals through attributes
    Case("str.__class__", "{{ x.__class__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    Case("__class__.__mro__", "{{ x.__class__.__mro__ }}", "attribute '__class__' of 'str' object is unsafe"),
    Case("__mro__", "{{ x.__mro__ }}", "has no attribute '__mro__'"),
    Case("__subclasses__", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "attribute '__class__' of 'str' object is unsafe"),
    Case("dict.__subclasses__", "{{ dict.__subclasses__() }}", "'dict' is undefined"),
    Case("dict.mro", "{{ dict.mro()[1] }}", "'dict' is undefined"),
    Case("function.__globals__", "{{ range.__globals__ }}", "attribute '__globals__' of 'function' object is unsafe"),
    Case("__init__.__globals__", "{{ range.__init__.__globals__ }}", "attribute '__init__' of 'function' object is unsafe"),
    Case("type.__init__.__globals__", "{{ dict.__init__.__globals__['os'] }}", "attribute '__init__' of 'StrictUndefined' object is unsafe"),
    Case("__builtins__", "{{ __builtins__['eval']('1') }}", "'__builtins__' is undefined"),
    Case("attr-filter", "{{ x|attr('__class__') }}", "attribute '__class__' of 'str' object is unsafe"),
    Case("attr-filter-escaped-underscores", r'{{ x|attr("\x5f\x5fclass\x5f\x5f") }}', "attribute '__class__' of 'str' object is unsafe"),
    Case("subscript-escaped-underscores", r'{{ x["\x5f\x5fclass\x5f\x5f"] }}', "attribute '__class__' of 'str' object is unsafe"),
    Case("attr-chain-to-mro", r'{{ x|attr("\x5f\x5fclass\x5f\x5f")|attr("\x5f\x5fmro\x5f\x5f") }}', "has no attribute '__mro__'"),
    Case("sort-by-dunder", "{{ items|sort(attribute='__class__') }}", "attribute '__class__' of 'int' object is unsafe"),
    Case("selectattr-dunder", "{{ items|selectattr('__class__')|list }}", "attribute '__class__' of 'int' object is unsafe"),
    Case("str.__len__", "{{ x.__len__() }}", "attribute '__len__' of 'str' object is unsafe"),
    # Globals that Flask or Jinja's defaults would provide
    Case("request", "{{ request.environ }}", "'request' is undefined"),
    Case("config", "{{ config.items() }}", "'config' is undefined"),
    Case("settings", "{{ settings.SECRET_KEY }}", "'settings' is undefined"),
    Case("lipsum.__globals__", "{{ lipsum.__globals__['os'].popen('id').read() }}", "'lipsum' is undefined"),
    Case("cycler", "{{ cycler(1, 2).next() }}", "'cycler' is undefined"),
    Case("cycler.__init__.__globals__", "{{ cycler.__init__.__globals__.os.popen('id').read() }}", "attribute '__init__' of 'StrictUndefined' object is unsafe"),
    Case("joiner", "{% set j = joiner() %}{{ j() }}", "'joiner' is undefined"),
    Case("joiner.__init__.__globals__", "{{ joiner.__init__.__globals__.os }}", "attribute '__init__' of 'StrictUndefined' object is unsafe"),
    Case("namespace", "{% set ns = namespace(a=1) %}{{ ns.__init__.__globals__ }}", "'namespace' is undefined"),
    Case("set-attribute-on-dict", "{% set d = dict(a=1) %}{% set d.a = 2 %}{{ d }}", "'dict' is undefined"),
    Case("self.__dict__", "{{ self.__dict__ }}", "attribute '__dict__' of 'TemplateReference' object is unsafe"),
    Case("self._TemplateReference__context", "{{ self._TemplateReference__context }}", "'_TemplateReference__context' of 'TemplateReference' object is unsafe"),
    Case("loop.__class__", "{% for i in items %}{{ loop.__class__ }}{% endfor %}", "attribute '__class__' of 'LoopContext' object is unsafe"),
    Case("loop._iterator", "{% for i in items %}{{ loop._iterator }}{% endfor %}", "attribute '_iterator' of 'LoopContext' object is unsafe"),
    # Changing the caller's data
    Case("list.append", "{% set _ = items.append(1) %}", "attribute 'append' of 'list' object is unsafe"),
    Case("dict.update", "{% set _ = data.update({'b': 2}) %}", "attribute 'update' of 'dict' object is unsafe"),
    Case("list.pop", "{{ items.pop() }}", "attribute 'pop' of 'list' object is unsafe"),
    Case("dict.pop", "{{ data.pop('a') }}", "attribute 'pop' of 'dict' object is unsafe"),
    Case("dict.clear", "{{ data.clear() }}", "attribute 'clear' of 'dict' object is unsafe"),
    Case("dict.setdefault", "{{ data.setdefault('b', 2) }}", "attribute 'setdefault' of 'dict' object is unsafe"),
    Case("nested-list.append", "{{ rows[0].append(3) }}", "attribute 'append' of 'list' object is unsafe"),
    Case("attr-filter-update", "{{ (data|attr('update'))(b=2) }}", "attribute 'update' of 'dict' object is unsafe"),
    Case("own-dict.update", "{% set d = dict(a=1) %}{{ d.update(b=2) }}", "'dict' is undefined"),
    Case("dict.__init__(data)", "{{ dict.__init__(data, b=2) }}", "attribute '__init__' of 'StrictUndefined' object is unsafe"),
    Case("unbound-dict.update", "{{ dict.update(data, {'b': 2}) }}", "'dict' is undefined"),
    Case("unbound-dict.pop", "{{ dict.pop(data, 'a') }}", "'dict' is undefined"),
    Case("unbound-dict.clear", "{{ dict.clear(data) }}", "'dict' is undefined"),
    Case("unbound-dict.setdefault", "{{ dict.setdefault(data, 'b', 2) }}", "'dict' is undefined"),
    # Formatting
    Case("format-filter-huge-width", "{{ '%999999999s'|format(x) }}", "format widths are limited to 1000"),
    Case("format-filter-huge-precision", "{{ '%.999999999f'|format(1.5) }}", "format widths are limited to 1000"),
    Case("percent-huge-width", '{{ "%999999999s" % "x" }}', "format widths are limited to 1000"),
    Case("percent-flags-huge-width", '{{ "%-0999999999d" % 1 }}', "format widths are limited to 1000"),
    Case("str.format-dunder", "{{ '{0.__class__}'.format(x) }}", "str.format is not available in prompts"),
    Case("str.format-huge-width", "{{ '{:>999999999}'.format('x') }}", "str.format is not available in prompts"),
    Case("str.format_map", "{{ '{a.__class__}'.format_map(data) }}", "str.format is not available in prompts"),
    Case("format-filter-star-width", "{{ '%*s'|format(10**8, x) }}", "* widths are not allowed in formats"),
    Case("format-filter-star-precision", "{{ '%.*f'|format(10**8, 1.5) }}", "* widths are not allowed in formats"),
    Case("percent-star-width", '{{ "%*s" % (10**8, x) }}', "* widths are not allowed in formats"),
    Case("format-filter-mapping-key-width", "{{ '%(a)100000000s'|format(a=x) }}", "format widths are limited to 1000"),
    Case("bytes-percent-width", "{{ '%100000000s'.encode() % x.encode() }}", "format widths are limited to 1000"),
    # Arithmetic and repetition
    Case("str-times-10**9", "{{ 'x' * 10**9 }}", "the result of * would be longer than 200000 characters"),
    Case("10**9-times-str", "{{ 10**9 * 'x' }}", "the result of * would be longer than 200000 characters"),
    Case("list-times-10**9", "{{ [1] * 10**9 }}", "the result of * would be longer than 200000 characters"),
    Case("9**(9**9)", "{{ 9**(9**9) }}", "the result of ** would be too large"),
    Case("float-power-overflow", "{{ (1.5 ** 100) ** 100 }}", "the result of ** would be too large"),
    Case("big-int-squarings", squarings(8), "the result of * would be too large"),
    Case("str-concat-doublings", doublings("'x' * 200000", "~", 9), "the joined text would be longer than 200000 characters"),
    Case("list-plus-doublings", doublings("[0] * 5000", "+", 6), "the result of + would be longer than 200000 characters"),
    Case("sum-of-lists", "{% set l = [0] * 5000 %}{{ [" + ", ".join(["l"] * 41) + "]|sum(start=[])|length }}", "the sum filter's input would be longer than 200000 characters"),
    Case("list-of-big-strings-times", "{% set a = 'x' * 100000 %}{% set b = [a] * 10000 %}{{ b|length }}", "the result of * would be longer than 200000 characters"),
    Case("list-of-big-strings-printed", "{% set a = 'x' * 100000 %}{% set b = [a, a, a] %}{{ b }}", "the printed value would be longer than 200000 characters"),
    Case("list-of-big-strings-string", "{% set a = 'x' * 100000 %}{{ [a, a, a]|string|length }}", "the string filter's input would be longer than 200000 characters"),
    Case("list-of-big-strings-tojson", "{% set a = 'x' * 100000 %}{{ [a, a, a]|tojson|length }}", "the tojson filter's input would be longer than 200000 characters"),
    Case("list-of-big-strings-pprint", "{% set a = 'x' * 100000 %}{{ [a, a, a]|pprint|length }}", "the pprint filter's input would be longer than 200000 characters"),
    # range()
    Case("range-10**9-loop", "{% for i in range(10**9) %}{% endfor %}", "range() is limited to 10000 items"),
    Case("range-10**9-list", "{{ range(10**9)|list }}", "range() is limited to 10000 items"),
    Case("range-10**9-printed", "{{ range(10**9) }}", "range() is limited to 10000 items"),
    # Time and size bombs
    Case("nested-range-loops-no-output", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "the render took longer than 0.5s"),
    Case("nested-loops-over-a-list-no-output", "{% set l = range(3000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}done", "the render took longer than 0.5s"),
    Case("huge-output-via-loops", "{% for i in range(10000) %}{% for j in range(10000) %}0123456789{% endfor %}{% endfor %}", "the rendered text is longer than 200000 characters"),
    Case("center-10**9", "{{ x|center(10**9) }}", "the center width is limited to 1000"),
    Case("center-width-keyword", "{{ x|center(width=10**9) }}", "the center width is limited to 1000"),
    Case("indent-10**9", "{{ x|indent(10**9) }}", "the indent width is limited to 1000"),
    Case("wordwrap-10**9", "{{ x|wordwrap(10**9) }}", "the wordwrap width is limited to 1000"),
    Case("filter-block-center", "{% filter center(10**9) %}x{% endfilter %}", "the center width is limited to 1000"),
    Case("indent-by-a-long-string", "{{ ('a\\n' * 1000)|indent(' ' * 100000) }}", "the indent width is limited to 1000"),
    Case("str.center", "{{ x.center(10**8) }}", "the center width is limited to 1000"),
    Case("str.ljust", "{{ x.ljust(10**8) }}", "the ljust width is limited to 1000"),
    Case("str.zfill", "{{ x.zfill(10**8) }}", "the zfill width is limited to 1000"),
    Case("str.expandtabs", "{{ ('\\t' * 100000).expandtabs(1000)|length }}", "the expanded text would be longer than 200000 characters"),
    Case("str.join", "{% set y = 'y' * 100000 %}{{ ' '.join([y, y, y]) }}", "the joined text would be longer than 200000 characters"),
    Case("str.translate", "{{ ('x' * 200000).translate({120: 'y' * 1000})|length }}", "str.translate is not available in prompts"),
    Case("join-filter-long-separator", "{{ range(10000)|join(' ' * 10000) }}", "the joined text would be longer than 200000 characters"),
    Case("replace-filter", "{% set s = 'x' * 200000 %}{{ s|replace('x', s[:500]) }}", "the replaced text would be longer than 200000 characters"),
    Case("batch-filter-fill", "{{ range(10)|batch(10**7, 'x')|list|length }}", "the batch count is limited to 10000 items"),
    Case("slice-filter", "{{ items|slice(600000)|list|length }}", "the slice count is limited to 10000 items"),
    # Recursion
    Case("recursive-macro", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nest too deeply"),
    Case("recursive-loop", "{% for x in rows recursive %}{{ loop(rows) }}{% endfor %}", "nest too deeply"),
    Case("recursive-call-block", "{% macro f() %}{{ caller() }}{% endmacro %}{% macro g() %}{% call f() %}{{ g() }}{% endcall %}{% endmacro %}{{ g() }}", "nest too deeply"),
    Case("caller-outside-a-call", "{% macro f() %}{{ caller() }}{% endmacro %}{{ f() }}", "No caller defined"),
]  # fmt: skip

# Names that exist and are harmless: they print a fixed description and nothing else.
HARMLESS = [
    pytest.param("{{ self }}", "<TemplateReference None>", id="self"),
    pytest.param("{% for i in items %}{{ loop }}{% endfor %}", "<LoopContext 1/2><LoopContext 2/2>", id="loop"),
    pytest.param("{{ items|map(attribute='__class__')|list }}", "[Undefined, Undefined]", id="map-attribute-dunder"),
]


# --- The watch every case renders under --------------------------------------------------

# Python's audit events for what a template must never cause. Opening .py/.pyc files is
# allowed: Jinja imports a few modules lazily on first use.
FORBIDDEN_EVENTS = {
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "subprocess.Popen", "socket.connect", "socket.bind", "socket.getaddrinfo", "os.remove", "os.rmdir", "os.rename",
    "os.truncate", "os.chmod", "os.chown", "os.putenv", "os.unsetenv", "ctypes.dlopen", "ctypes.call_function",
    "pickle.find_class", "webbrowser.open",
}  # fmt: skip
_audited: list | None = None  # a list while a render is watched
_hooked = False


def _audit(event, args):
    if _audited is None:
        return
    if event in FORBIDDEN_EVENTS or (event == "open" and not str(args[0]).endswith((".py", ".pyc"))):
        _audited.append((event, args[:2]))


@dataclass
class Watch:
    events: list


@contextmanager
def watched():
    """Record forbidden audit events."""
    global _audited, _hooked
    if not _hooked:  # an audit hook cannot be removed, so one is added once for the session
        sys.addaudithook(_audit)
        _hooked = True
    watch = Watch(events=[])
    _audited = watch.events
    try:
        yield watch
    finally:
        _audited = None


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.SECRET_KEY = SECRET_KEY
    settings.PROMPT_RENDER_TIMEOUT_SECONDS = TIMEOUT


# --- The corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("template, fragment", [case.param() for case in CORPUS])
def test_escape_is_refused_with_a_reason(template, fragment, settings):
    if "took longer" not in fragment:
        settings.PROMPT_RENDER_TIMEOUT_SECONDS = ROOMY
    given = variables()

    with watched() as watch, pytest.raises(RenderError) as error:
        render_template(template, given, project_id=0)  # a project with no prompts: nothing to include

    assert fragment in error.value.message
    assert SECRET_KEY not in error.value.message
    assert watch.events == []
    assert given == variables(), "the template changed the variables it was given"


@pytest.mark.parametrize("template, expected", HARMLESS)
def test_names_that_exist_render_only_a_harmless_description(template, expected):
    given = variables()

    with watched() as watch:
        text = render_template(template, given, project_id=0)

    assert text == expected
    assert watch.events == [] and given == variables()


def test_no_case_ever_shows_the_secret_key():
    templates = [case.template for case in CORPUS] + [param.values[0] for param in HARMLESS]
    shown = []
    for template in templates:
        try:
            shown.append((template, render_template(template, variables(), project_id=0)))
        except RenderError as error:
            shown.append((template, error.message))
    assert [template for template, text in shown if SECRET_KEY in text] == []


def test_nested_range_loops_stop_at_the_time_limit(settings):
    settings.PROMPT_RENDER_TIMEOUT_SECONDS = 0.5
    ticks = []

    with pytest.raises(RenderError, match=r"took longer than 0\.5s"):
        render_template("{% for i in range(10000) %}{% for j in range(10000) %}{{ tick() }}{% endfor %}{% endfor %}",
                        {"tick": lambda: ticks.append(1) or ""}, project_id=0)  # fmt: skip
    assert 0 < len(ticks) < 10_000 * 10_000  # stopped inside the loops, not after them


@pytest.mark.parametrize(
    "template, expected",
    [
        pytest.param("{{ x|center(9) }}", "   abc   ", id="center"),
        pytest.param("{{ 'a\nb'|indent(2) }}", "a\n  b", id="indent"),
        pytest.param("{{ 'aaa bbb'|wordwrap(3) }}", "aaa\nbbb", id="wordwrap"),
        pytest.param("{{ '%5s|%-3d|%.2f'|format(x, 7, 1.5) }}", "  abc|7  |1.50", id="format-filter"),
        pytest.param("{{ '%s and %s' % (x, name) }}", "abc and Ada", id="percent"),
        pytest.param("{{ x * 2 }}{{ 2 ** 10 }}", "abcabc1024", id="times-and-power"),
        pytest.param("{% for i in range(3) %}{{ i }}{% endfor %}", "012", id="range"),
        pytest.param("{{ {'a': 1}.items()|list }}", "[('a', 1)]", id="dict-literal"),
    ],
)
def test_the_same_features_within_the_limits_still_work(template, expected):
    assert render_template(template, variables(), project_id=0) == expected


# --- Includes and other projects -------------------------------------------------------------

CONFIDENTIAL = "confidential text of another project"


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def other_project():
    """A second project with a text prompt named `secret`."""
    other = MembershipFactory(role=Role.OWNER)
    create(other, "secret", template=CONFIDENTIAL)
    return other.project


def create(member, name, **fields):
    fields.setdefault("endpoint", ModelEndpointFactory())
    return services.prompt_create(project=member.project, actor=member.user, name=name, message="v1", **fields)




@pytest.mark.django_db
@pytest.mark.parametrize(
    "template, fragment",
    [
        pytest.param("{% include 'nope' %}", "Included prompt 'nope' does not exist.", id="include-missing"),
        pytest.param("{% include 'nope@production' %}", "Included prompt 'nope@production' does not exist.", id="include-missing-label"),
        pytest.param("{% extends 'nope' %}", "'nope' does not exist", id="extends-missing"),
        pytest.param("{% import 'nope' as m %}", "'nope' does not exist", id="import-missing"),
        pytest.param("{% from 'nope' import f %}", "'nope' does not exist", id="from-import-missing"),
        pytest.param("{% include 'secret' %}", "Included prompt 'secret' does not exist.", id="include-other-project-by-name"),
        pytest.param("{% include 'secret@1' %}", "Included prompt 'secret@1' does not exist.", id="include-other-project-by-version"),
        pytest.param("{% extends 'secret' %}", "'secret' does not exist", id="extends-other-project-by-name"),
        pytest.param("{% include '{other}/secret' %}", "", id="include-other-project-by-id"),
        pytest.param("{% include ['{other}/secret'] %}", "", id="include-list-other-project"),
        pytest.param("{% extends '{other}/secret' %}", "", id="extends-other-project-by-id"),
        pytest.param("{% import '{other}/secret' as m %}{{ m }}", "", id="import-other-project-by-id"),
    ],
)
def test_includes_resolve_only_in_the_project_being_rendered(owner, other_project, template, fragment):
    template = template.replace("{other}", str(other_project.pk))

    with pytest.raises(RenderError) as error:
        text = render_template(template, {}, project_id=owner.project.pk)
        assert CONFIDENTIAL not in text, f"rendered the other project's prompt: {text!r}"

    assert fragment in error.value.message and CONFIDENTIAL not in error.value.message


@pytest.mark.django_db
@pytest.mark.parametrize(
    "template, fragment",
    [
        pytest.param("{% include name_var %}", "include needs a literal prompt name", id="computed-include"),
        pytest.param("{% include 'sec' ~ 'ret' %}", "include needs a literal prompt name", id="concatenated-include"),
        pytest.param("{% include 'secret' %}", "'secret' does not exist in this project", id="include-other-project"),
        pytest.param("{% include '{other}/secret' %}", "is not a prompt name", id="include-other-project-by-id"),
        pytest.param("{% extends '{other}/secret' %}", "", id="extends-other-project-by-id"),
        pytest.param("{% import '{other}/secret' as m %}{{ m }}", "", id="import-other-project-by-id"),
        pytest.param("{% from '{other}/secret' import f %}", "", id="from-import-other-project-by-id"),
        pytest.param("{% extends name_var %}", "", id="computed-extends"),
        pytest.param("{% import name_var as m %}{{ m }}", "", id="computed-import"),
    ],
)
def test_saving_refuses_what_could_reach_outside_the_project(owner, other_project, template, fragment):
    with pytest.raises(Invalid) as error:
        create(owner, "mail", template=template.replace("{other}", str(other_project.pk)))
    assert fragment in error.value.message


@pytest.mark.django_db
def test_a_saved_prompt_cannot_read_another_project_through_a_variable(owner, other_project):
    try:
        prompt = create(owner, "mail", template="{% extends name_var %}")
    except Invalid:
        return  # refused at save: nothing to render
    with pytest.raises(RenderError):
        text = render_version(prompt, {"name_var": f"{other_project.pk}/secret"}).text
        assert CONFIDENTIAL not in text, f"rendered the other project's prompt: {text!r}"


@pytest.mark.django_db
def test_the_preview_of_a_viewer_cannot_read_another_project(client, other_project):
    viewer = MembershipFactory(role=Role.VIEWER)
    client.force_login(viewer.user)
    data = {"project": str(viewer.project.pk), "kind": "text", "template": f"{{% extends '{other_project.pk}/secret' %}}"}

    page = client.post("/admin/prompts/prompt/preview/", data).content.decode()

    assert CONFIDENTIAL not in page
