import pytest

from prompts import rendering, selectors, services
from promptlab.accounts.models import Role
from prompts.rendering import RenderError, render_version
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


def create(owner, name, message="v1", **fields):
    fields.setdefault("endpoint", ModelEndpointFactory())
    return services.prompt_create(project=owner.project, actor=owner.user, name=name, message=message, **fields)


def test_variables_conditionals_and_loops(owner):
    prompt = create(
        owner, "order",
        template="Dear {{ name }},{% if vip %} (VIP){% endif %}\n{% for item in items %}- {{ item }}\n{% endfor %}",
    )  # fmt: skip

    rendered = render_version(prompt, {"name": "Ada", "vip": True, "items": ["tea", "cake"]})

    assert rendered.text == "Dear Ada, (VIP)\n- tea\n- cake\n"
    assert rendered.version == 1 and rendered.warnings == []


def test_every_missing_variable_is_named(owner):
    prompt = create(owner, "order", template="{{ a }} {{ b }} {{ c }}")

    with pytest.raises(RenderError, match="Missing variables: a, c.") as error:
        render_version(prompt, {"b": 1})
    assert error.value.details == {"missing": ["a", "c"]}


def test_unknown_variables_are_refused_in_strict_mode_and_reported_otherwise(owner):
    strict = create(owner, "strict", template="{{ a }}")
    lenient = create(owner, "lenient", template="{{ a }}", strict_variables=False)

    with pytest.raises(RenderError, match="Unknown variables: zz"):
        render_version(strict, {"a": 1, "zz": 2})
    assert render_version(lenient, {"a": 1, "zz": 2}).warnings == ["Unknown variables ignored: zz."]


def test_declared_defaults_optional_variables_and_types(owner):
    prompt = create(
        owner, "typed", template="{{ tone }} {{ count }}{% if note %} {{ note }}{% endif %}",
        variables=[
            {"name": "tone", "type": "string", "default": "friendly"},
            {"name": "count", "type": "integer", "description": "how many"},
            {"name": "note", "type": "string", "required": False},
        ],
    )  # fmt: skip

    assert render_version(prompt, {"count": 3}).text == "friendly 3"
    with pytest.raises(RenderError, match="count must be integer"):
        render_version(prompt, {"count": "three"})
    with pytest.raises(RenderError, match="Missing variables: count"):
        render_version(prompt, {})


def test_chat_prompts_render_each_message_and_expand_placeholders(owner):
    prompt = create(
        owner, "support", kind="chat",
        messages=[{"role": "system", "content": "You help {{ company }} customers."}, {"placeholder": "history"},
                  {"role": "user", "content": "{{ question }}"}],
    )  # fmt: skip
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]

    rendered = render_version(prompt, {"company": "Acme", "history": history, "question": "Refund?"})

    assert rendered.messages == [
        {"role": "system", "content": "You help Acme customers."}, *history, {"role": "user", "content": "Refund?"},
    ]
    assert prompt.used_variables == ["company", "history", "question"]
    with pytest.raises(RenderError, match="history must be a list of messages"):
        render_version(prompt, {"company": "Acme", "history": "not a list", "question": "?"})


def test_includes_compose_snippets_pinned_by_label_or_version(owner):
    snippet = create(owner, "signature", template="-- {{ agent }} v1")
    snippet = services.prompt_update(prompt=snippet, actor=owner.user, message="v2", template="-- {{ agent }} v2")
    services.label_move(prompt=snippet, actor=owner.user, label="production", version=1)
    prompt = create(owner, "mail", template="{% include 'signature' %}|{% include 'signature@2' %}|{% include 'signature@production' %}"
                                             "|{% include 'signature@v1' %}")  # fmt: skip

    rendered = render_version(prompt, {"agent": "Bob"})

    # unpinned: the production version when there is one
    assert rendered.text == "-- Bob v1|-- Bob v2|-- Bob v1|-- Bob v1"
    assert prompt.used_variables == ["agent"]

    services.label_move(prompt=snippet, actor=owner.user, label="production", version=2)
    assert render_version(prompt, {"agent": "Bob"}).text == "-- Bob v2|-- Bob v2|-- Bob v2|-- Bob v1"  # a moved label is seen at once


def test_another_projects_snippet_cannot_be_included(owner):
    other = MembershipFactory(role=Role.OWNER)
    create(other, "secret", template="other project's text")

    with pytest.raises(Exception, match="'secret' does not exist in this project"):
        create(owner, "mail", template="{% include 'secret' %}")


def test_compiled_templates_are_cached_per_prompt_and_version(owner):
    prompt = create(owner, "cached", template="Hi {{ name }}")
    record = selectors.prompt_version(prompt=prompt, version=1)
    rendering._compiled.clear()

    render_version(record, {"name": "a"})
    compiled = dict(rendering._compiled)
    render_version(record, {"name": "b"})

    assert list(compiled) == [(prompt.pk, 1, 0)]
    assert rendering._compiled[(prompt.pk, 1, 0)][1] is compiled[(prompt.pk, 1, 0)][1]


def test_output_size_is_bounded(owner, settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1000
    prompt = create(owner, "big", template="{% for i in range(500) %}{{ text }}{% endfor %}")

    with pytest.raises(RenderError, match="longer than 1000 characters"):
        render_version(prompt, {"text": "0123456789"})


def labels_moved_into_a_cycle(owner, names):
    """Each prompt includes the next, the last the first: saved while production still pointed
    at plain v1s (so saving saw no cycle), then every production label moved to v2."""
    prompts = [create(owner, name, template=name.upper()) for name in names]
    for prompt in prompts:
        services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    for prompt, target in zip(prompts, [*names[1:], names[0]]):
        services.prompt_update(prompt=prompt, actor=owner.user, message="include", template=f"{prompt.name.upper()} {{% include '{target}' %}}")
    for prompt in prompts:
        services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)
    return {prompt.name: selectors.prompt_version(prompt=prompt, label="production") for prompt in prompts}


def test_a_cycle_made_by_moving_labels_is_refused_at_render(owner, settings, django_assert_max_num_queries):
    a = labels_moved_into_a_cycle(owner, ["a", "b"])["a"]
    settings.PROMPT_RENDER_TIMEOUT_SECONDS = 3600  # the refusal must not come from the clock

    # Two include lookups (b, then a again), not one per include until a count runs out.
    with django_assert_max_num_queries(8), pytest.raises(RenderError) as error:
        render_version(a, {})

    assert error.value.message == "Include cycle: a → b → a."
    assert error.value.details == {"cycle": ["a", "b", "a"]}


def test_a_three_prompt_cycle_is_named_in_order_from_where_it_closes(owner):
    versions = labels_moved_into_a_cycle(owner, ["a", "b", "c"])

    with pytest.raises(RenderError, match="^Include cycle: a → b → c → a\\.$"):
        render_version(versions["a"], {})
    with pytest.raises(RenderError, match="^Include cycle: c → a → b → c\\.$"):
        render_version(versions["c"], {})
    with pytest.raises(RenderError, match="^Include cycle: b → c → a → b\\.$"):  # the unsaved text is not on the cycle
        rendering.render_template("{% include 'b' %}", {}, project_id=owner.project.pk)


def test_a_diamond_and_a_repeated_snippet_are_not_cycles(owner):
    create(owner, "d", template="d")
    create(owner, "b", template="b({% include 'd' %})")
    create(owner, "c", template="c({% include 'd' %}{% include 'd' %})")
    a = create(owner, "a", template="{% include 'b' %} {% include 'c' %} {% for i in range(3) %}{% include 'd' %}{% endfor %}")

    assert render_version(a, {}).text == "b(d) c(dd) ddd"


def test_a_wide_fan_out_of_includes_is_bounded(owner, monkeypatch):
    monkeypatch.setattr(rendering, "MAX_INCLUDES_PER_RENDER", 5)
    create(owner, "d", template="d")
    a = create(owner, "a", template="{% for i in range(6) %}{% include 'd' %}{% endfor %}")

    with pytest.raises(RenderError, match="more than 5 includes in one render"):
        render_version(a, {})


def test_a_filter_that_asserts_on_its_arguments_fails_as_a_render_error():
    # Jinja's truncate asserts that the length leaves room for its "...": an AssertionError, not a 500.
    with pytest.raises(RenderError, match="The template failed: AssertionError: expected length >= 3, got 2"):
        rendering.render_template("{{ 'abcdef'|truncate(2) }}", {}, project_id=0)
