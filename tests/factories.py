import factory
from django.contrib.auth import get_user_model

from promptlab.accounts.models import Membership, Project, Role
from promptlab.llm.models import ModelEndpoint


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    username = factory.SelfAttribute("email")
    password = factory.django.Password("correct horse battery staple")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory, is_staff=True)
    role = Role.EDITOR


class ModelEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelEndpoint

    name = factory.Sequence(lambda n: f"endpoint-{n}")
    display_name = factory.Sequence(lambda n: f"Endpoint {n}")
    model = "openai/gpt-4o-mini"
    timeout_seconds = 5
    max_retries = 2


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.Dataset"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"dataset-{n}")


class PromptFactory(factory.django.DjangoModelFactory):
    """A prompt saved as version 1 without the service (its history holds that version)."""

    class Meta:
        model = "prompts.Prompt"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"prompt-{n}")
    template = "Q: {{ q }}"
    used_variables = ["q"]
    endpoint = factory.SubFactory(ModelEndpointFactory)
    version = 1


class DatasetItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.DatasetItem"

    dataset = factory.SubFactory(DatasetFactory)
    row = factory.Sequence(lambda n: n + 1)
    vars = factory.Sequence(lambda n: {"q": f"question {n}"})


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.Experiment"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"experiment {n}")
    dataset = factory.SubFactory(DatasetFactory, project=factory.SelfAttribute("..project"))
    status = "running"


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.Variant"

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"variant-{n}")
    prompt = factory.SubFactory(PromptFactory, project=factory.SelfAttribute("..experiment.project"))
    version = 1


class RunFactory(factory.django.DjangoModelFactory):
    """A run that has answered: scoring reads only the row, never the model."""

    class Meta:
        model = "experiments.Run"

    experiment = factory.SubFactory(ExperimentFactory)
    variant = factory.SubFactory(VariantFactory, experiment=factory.SelfAttribute("..experiment"))
    item = factory.SubFactory(DatasetItemFactory, dataset=factory.SelfAttribute("..experiment.dataset"))
    status = "done"
    output = "The answer is 42."
    latency_ms = 120.0
    cost_usd = "0.0010"  # saved as a Decimal; re-read the row to get one


class ApprovalRequestFactory(factory.django.DjangoModelFactory):
    """A pending proposal to move production, saved without the service (no notifications)."""

    class Meta:
        model = "governance.ApprovalRequest"

    prompt = factory.SubFactory(PromptFactory)
    project = factory.SelfAttribute("prompt.project")
    prompt_name = factory.SelfAttribute("prompt.name")
    version = 1
    proposed_by = factory.SubFactory(UserFactory)


class WebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.Webhook"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"hook {n}")
    url = "http://127.0.0.1:9/hook"
    secret = factory.Sequence(lambda n: f"whsec_test_{n}")
    events = factory.LazyFunction(lambda: ["prompt.version_created", "label.moved", "approval.requested", "approval.decided"])
