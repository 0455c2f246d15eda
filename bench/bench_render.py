"""What rendering a saved prompt costs once its compiled template is cached.

Every model call, experiment row and API render goes through `render_version`, so its
per-call price is paid thousands of times per run. Both prompts are saved through
prompts.services and rendered from their historical version, as callers do, so the
compiled-template cache applies; the first render warms it. Each is timed against a bare
`str.format` building the same text in the same run. Targets: simple < 50 µs, chat < 250 µs.
"""

import logging

from django.contrib.auth import get_user_model

from bench.timing import Comparison, rates
from promptlab.accounts import services as account_services
from promptlab.llm import services as llm_services
from prompts import selectors, services
from prompts.rendering import render_version

SIMPLE = "Hello {{ name }}, your order {{ order_id }} ships on {{ date }}."
CHAT = [
    ("system", "You are the support agent of {{ company }}. Answer in {{ language }}, in at most {{ max_words }} words."),
    ("user", "Hi, I am {{ customer }}."),
    ("assistant", "Hello {{ customer }}, how can I help with your {{ product }}?"),
    ("user", "My order {{ order_id }} has not arrived."),
    ("assistant", "Sorry to hear that, {{ customer }}. Order {{ order_id }} ships on {{ date }}."),
    ("user", "{{ question }}"),
]
SIMPLE_VALUES = {"name": "Ada", "order_id": "A-1042", "date": "3 March"}
CHAT_VALUES = {
    "company": "Acme", "language": "English", "max_words": 80, "customer": "Ada", "product": "kettle",
    "order_id": "A-1042", "date": "3 March", "question": "Can I change the delivery address?",
}  # fmt: skip
TARGET_US = {"simple": 50, "chat": 250}


def run() -> list[Comparison]:
    simple, chat = _saved_versions()
    simple_format = _as_format(SIMPLE)
    chat_formats = [(role, _as_format(content)) for role, content in CHAT]

    def render_simple():
        return render_version(simple, SIMPLE_VALUES)

    def format_simple():
        return simple_format.format(**SIMPLE_VALUES)

    def render_chat():
        return render_version(chat, CHAT_VALUES)

    def format_chat():
        return [{"role": role, "content": content.format(**CHAT_VALUES)} for role, content in chat_formats]

    # Both sides must build the same text, or the comparison times different work; this
    # first render also compiles each template into the cache.
    if render_simple().text != format_simple() or render_chat().messages != format_chat():
        raise RuntimeError("render_version and str.format disagree on the benchmark prompts")
    rows = []
    for name, label, measured, baseline in [
        ("simple", "text prompt, 3 variables", render_simple, format_simple),
        ("chat", "chat prompt, 6 messages", render_chat, format_chat),
    ]:
        measured_rate, baseline_rate = rates(measured, baseline, seconds=2.0)
        us, base_us = 1e6 / measured_rate, 1e6 / baseline_rate
        rows.append(
            Comparison(
                f"render_version ({label}) vs str.format", "µs/render", us, base_us, lower_is_better=True,
                note=f"{us:.1f} µs per warm render (target < {TARGET_US[name]} µs: "
                     f"{'met' if us < TARGET_US[name] else 'MISSED'}); str.format of the same text {base_us:.2f} µs.",
            )  # fmt: skip
        )
    return rows


def _saved_versions():
    """Version 1 of each prompt, read back as callers read it."""
    services_log = logging.getLogger("prompts.services")
    level = services_log.level
    services_log.setLevel(logging.WARNING)  # the "prompt saved" lines are not part of the table
    try:
        user = get_user_model().objects.create_user(username="bench-render", email="bench-render@example.com")
        project = account_services.project_create(slug="bench-render", name="Render benchmark", owner=user)
        endpoint, _ = llm_services.endpoint_save(name="bench-render", display_name="Render benchmark", model="promptlab-demo/echo")
        simple = services.prompt_create(
            project=project, actor=user, name="order-update", message="bench", template=SIMPLE, endpoint=endpoint,
        )  # fmt: skip
        chat = services.prompt_create(
            project=project, actor=user, name="support-chat", message="bench", kind="chat", endpoint=endpoint,
            messages=[{"role": role, "content": content} for role, content in CHAT],
        )  # fmt: skip
    finally:
        services_log.setLevel(level)
    return selectors.prompt_version(prompt=simple, version=1), selectors.prompt_version(prompt=chat, version=1)


def _as_format(template: str) -> str:
    """The same text as a str.format string: {{ name }} becomes {name}."""
    return template.replace("{{ ", "{").replace(" }}", "}")
