"""What people read of a variant (Variant.display): its prompt, the version it ran and the
label that version was read from, told apart from the experiment's other variants."""

import pytest

from experiments.models import Variant, display_apart
from tests.factories import ExperimentFactory, ModelEndpointFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompt():
    return PromptFactory(name="support-reply")


def variant(prompt, name="support-reply", **fields) -> Variant:
    experiment = fields.pop("experiment", None) or ExperimentFactory(project=prompt.project)
    return Variant.objects.create(experiment=experiment, prompt=prompt, name=name, **fields)


@pytest.mark.parametrize("fields, shown", [
    ({"label": "production", "version": 3}, "support-reply v3 (production at start)"),  # started: the label was read then
    ({"label": "production"}, "support-reply at production"),  # a draft: the label is read at the start
    ({"version": 4}, "support-reply v4"),
    ({"name": "support-reply staging on GPT-4o", "label": "staging", "version": 2}, "support-reply v2 (staging at start)"),
    ({"name": "baseline", "label": "production", "version": 3}, "baseline: support-reply v3 (production at start)"),
])  # fmt: skip
def test_a_variant_reads_as_its_prompt_version_and_label(prompt, fields, shown):
    assert variant(prompt, **fields).display == shown


def test_variants_that_would_read_alike_say_what_tells_them_apart(prompt):
    experiment = ExperimentFactory(project=prompt.project)
    fast, smart = ModelEndpointFactory(display_name="Fast"), ModelEndpointFactory(display_name="Smart")
    variants = [
        variant(prompt, "support-reply v3 on Fast", experiment=experiment, version=3, endpoint=fast),
        variant(prompt, "support-reply v3 on Smart", experiment=experiment, version=3, endpoint=smart, params={"temperature": 0}),
        variant(prompt, "support-reply v3 on Smart #3", experiment=experiment, version=3, endpoint=smart, params={"temperature": 0.7}),
        variant(prompt, "support-reply v4", experiment=experiment, version=4, endpoint=fast),
        variant(prompt, "support-reply v4 #5", experiment=experiment, version=4, endpoint=fast),
    ]

    assert [v.display for v in display_apart(variants)] == [
        "support-reply v3 on Fast",
        "support-reply v3 on Smart with temperature=0",
        "support-reply v3 on Smart with temperature=0.7",
        "support-reply v4 (support-reply v4)",  # nothing but the name differs
        "support-reply v4 (support-reply v4 #5)",
    ]
    assert Variant.objects.get(pk=variants[0].pk).display == "support-reply v3"  # read alone, it knows no siblings
