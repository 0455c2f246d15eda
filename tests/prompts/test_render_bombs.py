"""Resource bombs: templates (and variables) built to exhaust a process's memory or time.

Each is refused with a RenderError naming the limit it hit, or renders within the limits.
Beside the escape corpus (test_render_security.py), which bombs the operators and loops;
these bomb the filters, the blocks that collect output, and the variables. How long each
takes and how much memory it costs is measured by bench/bench_render_limits.py, which
renders this same corpus.
"""

from dataclasses import dataclass, field

import pytest
from jinja2.filters import FILTERS
from jinja2.tests import TESTS

from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from prompts import rendering, services
from prompts.rendering import RenderBusy, RenderError, render_template, render_version
from tests.api.conftest import client_with, error_of
from tests.factories import MembershipFactory, ModelEndpointFactory

TIMEOUT = 0.5  # PROMPT_RENDER_TIMEOUT_SECONDS for the bombs that the time limit must stop
ROOMY = 60  # for every other bomb: a loaded machine must not let the clock win the race to refuse it
WORDS = "lorem ipsum dolor " * 10_000  # 180,000 characters of prose in one line


def variables() -> dict:
    """What every bomb is given: variables as large as a render allows."""
    return {"a": "x" * 100_000, "words": WORDS, "data": {str(n): n for n in range(10_000)}}


@dataclass(frozen=True)
class Bomb:
    id: str
    template: str
    refusal: str = ""  # part of the RenderError's message, naming the limit; "" when it renders
    output: str = ""  # what it renders when it is not refused
    given: dict = field(default_factory=dict)  # variables added to variables()

    def variables(self) -> dict:
        return variables() | self.given

    def param(self):
        return pytest.param(self, id=self.id)


CHARS = "longer than 200000 characters"
BLOCK = f"the text of a block would be {CHARS}"

BOMBS = [
    # The variables: every later step works on input no larger than this
    Bomb("variable-over-the-limit", "{{ doc|wordwrap(1) }}", "Variables too large: doc (each may be at most 200000 characters)",
         given={"doc": "x " * 300_000}),
    Bomb("nested-variable-over-the-limit", "{{ rows|length }}", "Variables too large: rows", given={"rows": [["x" * 1000] * 100] * 3}),
    Bomb("variable-of-many-numbers", "{{ numbers|sort|first }}", "Variables too large: numbers", given={"numbers": list(range(100_000))}),
    # wordwrap: its wrap string, and tiny widths that make textwrap quadratic in a long word
    Bomb("wordwrap-width-1-on-a-long-word", "{{ a|wordwrap(1) }}", "a word may be at most 1000 times the width"),
    Bomb("wordwrap-wrapstring", "{{ words|wordwrap(5, wrapstring='-' * 1000) }}", f"the wrapped text would be {CHARS}"),
    Bomb("wordwrap-width-2-many-lines", "{{ ('ab ' * 30000)|wordwrap(2)|length }}", output="89999"),
    Bomb("wordwrap-in-a-loop", "{% for i in range(10000) %}{{ words|wordwrap(6)|length }}{% endfor %}", "the render took longer than 0.5s"),
    # indent: the indent string and blank lines, repeated on every line
    Bomb("indent-blank-and-first", "{{ ('\\n' * 199999)|indent(1000, true, true)|length }}", f"the indented text would be {CHARS}"),
    Bomb("indent-by-a-string", "{{ ('a\\n' * 50000)|indent('>' * 999) }}", f"the indented text would be {CHARS}"),
    Bomb("indent-within-the-limit", "{{ ('line\\n' * 10000)|indent(4)|length }}", output="89996"),
    # center, replace, format, %: padding, repeats and arguments
    Bomb("center-every-item", "{{ range(10000)|map('center', 1000)|join|length }}", f"the join filter's input would be {CHARS}"),
    Bomb("center-a-list-of-references", "{{ [a, a, a]|center(10) }}", f"the center filter's input would be {CHARS}"),
    Bomb("replace-the-empty-string", "{{ a|replace('', 'yy') }}", f"the replaced text would be {CHARS}"),
    Bomb("format-filter-arguments", "{{ '%s%s%s'|format(a, a, a) }}", f"the formatted text would be {CHARS}"),
    Bomb("percent-many-widths", "{{ ('%1000s' * 300) % ((1,) * 300) }}", f"the formatted text would be {CHARS}"),
    Bomb("percent-a-tuple-of-references", "{{ ('%s' * 2000) % (" + ", ".join(["a"] * 2000) + ",) }}", f"the formatted text would be {CHARS}"),
    # join and str.join, from a list of references or a lazy map
    Bomb("join-a-list-of-references", "{{ [a, a, a]|join }}", f"the join filter's input would be {CHARS}"),
    Bomb("join-with-a-long-separator", "{{ range(10000)|map('string')|join('x' * 100) }}", f"the joined text would be {CHARS}"),
    Bomb("str.join-of-a-lazy-map", "{{ ''.join(range(10000)|map('center', 1000)) }}", f"the joined text would be {CHARS}"),
    # batch, list, unique, sort, map and the rest that read a whole list
    Bomb("batch-filled-with-a-long-string", "{{ range(1)|batch(10000, a)|list|length }}", f"the list filter's input would be {CHARS}"),
    Bomb("list-of-a-long-string", "{{ (a ~ a)|list|length }}", output="200000"),
    Bomb("unique-of-references", "{{ [a, a, a, a]|unique|list|length }}", f"the unique filter's input would be {CHARS}"),
    Bomb("sort-of-references", "{{ [a, a, a]|sort|first|length }}", f"the sort filter's input would be {CHARS}"),
    Bomb("sort-10000-numbers", "{{ range(10000)|reverse|sort|first }}", output="0"),
    Bomb("sort-in-a-loop", "{% for i in range(10000) %}{% set s = range(10000)|list|sort %}{% endfor %}", "the render took longer than 0.5s"),
    Bomb("map-upper-of-references", "{{ [a, a, a]|map('upper')|list|length }}", f"the list filter's input would be {CHARS}"),
    Bomb("map-wordwrap-per-item", "{{ [a]|map('wordwrap', 1)|list }}", "a word may be at most 1000 times the width"),
    Bomb("max-of-references", "{{ [a, a, a]|max|length }}", f"the max filter's input would be {CHARS}"),
    Bomb("slice-of-references", "{{ [a, a, a]|slice(3)|list|length }}", f"the slice filter's input would be {CHARS}"),
    Bomb("dictsort-10000-items", "{{ data|dictsort|length }}", output="10000"),
    Bomb("groupby-10000-groups", "{{ range(10000)|groupby('real')|length }}", output="10000"),
    Bomb("reverse-a-long-string", "{{ (a ~ a)|reverse|length }}", output="200000"),
    Bomb("loop-length-of-a-lazy-map", "{% for x in range(10000)|map('center', 1000) %}{% if loop.first %}{{ loop.length }}{% endif %}{% endfor %}",
         output="10000"),
    # Filters that grow their text by a factor, chained
    Bomb("escape-quotes", "{{ ('\"' * 50000)|escape|escape }}", f"the text of the escape filter would be {CHARS}"),
    Bomb("urlencode-unicode", "{{ ('é' * 100000)|urlencode }}", f"the text of the urlencode filter would be {CHARS}"),
    Bomb("upper-sharp-s", "{{ ('ß' * 150000)|upper }}", f"the text of the upper filter would be {CHARS}"),
    Bomb("striptags-many-tags", "{{ ('<b>' * 60000)|striptags|length }}", output="0"),
    # ~, * and + on lists of references to one long string
    Bomb("concat-a-list", "{{ [a, a, a] ~ '' }}", f"the joined text would be {CHARS}"),
    Bomb("times-a-long-string", "{{ (a * 3)|length }}", f"the result of * would be {CHARS}"),
    Bomb("plus-doubling-references", "{% set l = [a] %}{% set l = l + l %}{% set l = l + l %}{{ l|length }}", f"the result of + would be {CHARS}"),
    Bomb("plus-two-long-strings", "{{ (a + a)|length }}", output="200000"),
    # Blocks that collect what they print before it is joined
    Bomb("set-block-of-a-loop", "{% set s %}{% for i in range(10000) %}{{ a }}{% endfor %}{% endset %}{{ s|length }}", BLOCK),
    Bomb("macro-of-a-loop", "{% macro m() %}{% for i in range(10000) %}{{ a }}{% endfor %}{% endmacro %}{{ m()|length }}", BLOCK),
    Bomb("filter-block", "{% filter upper %}{% for i in range(3) %}{{ a }}{% endfor %}{% endfilter %}", BLOCK),
    Bomb("caller-called-three-times", "{% macro m() %}{{ caller() }}{{ caller() }}{{ caller() }}{% endmacro %}{% call m() %}{{ a }}{% endcall %}", BLOCK),
    Bomb("block-reference", "{{ self.b()|length }}{% if false %}{% block b %}{{ a }}{{ a }}{{ a }}{% endblock %}{% endif %}", BLOCK),
    Bomb("set-block-of-tiny-strings", "{% set s %}{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}{% endset %}",
         f"the text of a block would be {CHARS}"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PROMPT_RENDER_TIMEOUT_SECONDS = ROOMY


@pytest.mark.parametrize("bomb", [bomb.param() for bomb in BOMBS])
def test_bomb_is_refused_naming_the_limit_or_renders_within_it(bomb, settings):
    if "took longer" in bomb.refusal:
        settings.PROMPT_RENDER_TIMEOUT_SECONDS = TIMEOUT
    if not bomb.refusal:
        assert render_template(bomb.template, bomb.variables(), project_id=0) == bomb.output
        return

    with pytest.raises(RenderError) as error:
        render_template(bomb.template, bomb.variables(), project_id=0)

    assert bomb.refusal in error.value.message


def test_the_corpus_has_at_least_30_bombs_and_both_outcomes():
    assert len(BOMBS) >= 30 and len({bomb.id for bomb in BOMBS}) == len(BOMBS)
    assert any(bomb.output for bomb in BOMBS) and any("took longer" in bomb.refusal for bomb in BOMBS)


def test_every_builtin_filter_is_reviewed_and_the_tests_are_the_reviewed_ones():
    reviewed = rendering.TEXT_FILTERS | rendering.WHOLE_FILTERS | rendering.PLAIN_FILTERS

    assert set(FILTERS) == reviewed and set(rendering.ENV.filters) == reviewed
    assert len(reviewed) == len(rendering.TEXT_FILTERS) + len(rendering.WHOLE_FILTERS) + len(rendering.PLAIN_FILTERS)
    # Each constant time, or linear in a value already bounded; a new one needs a look first.
    assert set(TESTS) == {
        "!=", "<", "<=", "==", ">", ">=", "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped",
        "even", "false", "filter", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan",
        "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true",
        "undefined", "upper",
    }  # fmt: skip


def test_every_variable_too_large_is_named_at_once():
    with pytest.raises(RenderError) as error:
        render_template("{{ b }}{{ c }}", {"b": "x" * 200_001, "c": ["y" * 1000] * 201, "d": "small"}, project_id=0)

    assert error.value.message == "Variables too large: b, c (each may be at most 200000 characters)."
    assert error.value.details == {"too_large": ["b", "c"]}


# --- One render of a chat prompt -------------------------------------------------------------


@pytest.fixture
def owner(db):
    return MembershipFactory(role=Role.OWNER)


def create_chat(owner, name, *contents):
    return services.prompt_create(
        project=owner.project, actor=owner.user, name=name, message="v1", kind="chat", endpoint=ModelEndpointFactory(),
        messages=[{"role": "user", "content": content} for content in contents],
    )  # fmt: skip


def test_the_messages_of_a_chat_prompt_share_one_output_limit(owner, settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1000
    prompt = create_chat(owner, "long", *["{{ text }}"] * 3)

    assert len(render_version(prompt, {"text": "x" * 333}).messages) == 3
    with pytest.raises(RenderError, match="the rendered text is longer than 1000 characters"):
        render_version(prompt, {"text": "x" * 334})  # each message alone is well within the limit


def test_the_messages_of_a_chat_prompt_share_one_deadline(owner, settings):
    settings.PROMPT_RENDER_TIMEOUT_SECONDS = 0.5
    ticks = []
    # Each message stops after its share of ticks; together they must reach the time limit.
    prompt = create_chat(owner, "slow", *["{% for i in range(10000) %}{% for j in range(10000) %}{{ tick() }}{% endfor %}{% endfor %}"] * 2)

    with pytest.raises(RenderError, match=r"took longer than 0\.5s"):
        render_version(prompt, {"tick": lambda: ticks.append(1) or ""})
    assert ticks  # stopped inside the loops


# --- Render slots ------------------------------------------------------------------------------


@pytest.fixture
def one_slot(settings, monkeypatch):
    """One render slot in this process, and no waiting for it."""
    settings.PROMPT_RENDER_CONCURRENCY = 1
    monkeypatch.setattr(rendering, "RENDER_SLOT_WAIT_SECONDS", 0)
    return rendering._render_slots()


def test_a_render_beyond_the_slots_is_refused_as_busy_and_served_once_one_frees(one_slot):
    assert one_slot.acquire(blocking=False)  # another request is rendering
    try:
        with pytest.raises(RenderBusy) as error:
            render_template("Hi {{ name }}", {"name": "Ada"}, project_id=0)
    finally:
        one_slot.release()

    assert error.value.code == "render_busy" and "Rendering is busy" in error.value.message
    assert error.value.retry_after == ROOMY
    assert render_template("Hi {{ name }}", {"name": "Ada"}, project_id=0) == "Hi Ada"


def test_a_refused_render_gives_its_slot_back(one_slot):
    for _ in range(3):
        with pytest.raises(RenderError, match="the text of a block"):
            render_template(BOMBS[-1].template, variables(), project_id=0)

    assert render_template("{{ 1 + 1 }}", {}, project_id=0) == "2"


def test_the_messages_of_a_chat_prompt_take_one_slot(owner, one_slot):
    prompt = create_chat(owner, "two", "{{ a }}", "{{ b }}")

    assert [m["content"] for m in render_version(prompt, {"a": "1", "b": "2"}).messages] == ["1", "2"]


def test_the_render_api_answers_503_with_retry_after_when_rendering_is_busy(owner, one_slot):
    prompt = services.prompt_create(project=owner.project, actor=owner.user, name="greet", message="v1",
                                    template="Hello {{ name }}!", endpoint=ModelEndpointFactory())  # fmt: skip
    services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="k", scopes=["render"])
    api = client_with(secret)

    assert one_slot.acquire(blocking=False)
    try:
        busy = api.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}}, format="json")
    finally:
        one_slot.release()
    served = api.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}}, format="json")

    assert busy.status_code == 503 and busy["Retry-After"] == str(ROOMY)
    assert error_of(busy)["code"] == "render_busy"
    assert served.status_code == 200 and served.json()["text"] == "Hello Ada!"
