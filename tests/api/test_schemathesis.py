"""Schemathesis (v4) against the app's own OpenAPI schema, in process over WSGI: for every
operation, a bounded number of generated requests (valid ones and, in negative mode, ones
the schema forbids) made with a valid API key, checking that none answers 5xx and that
every answer, 4xx included, has a documented status and content type and matches its schema.
It runs with DEBUG on, as a development server does: there Django answers an unmatched URL
(a call id that is not a UUID, version 0) with an HTML page unless promptlab answers it.

Path parameters are mostly pointed at objects that exist, so the requests reach the code
behind the 404s. Tasks run eagerly and the prompt uses the offline demo model, so invoke
and experiment start answer without a worker or network. About a minute on two cores.
"""

import itertools
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from experiments.models import DatasetItem
from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from promptlab.llm import services as llm_services
from promptlab.llm.models import DEMO_PROVIDER
from prompts import services as prompt_services
from prompts.models import PromptCall
from tests.factories import DatasetFactory, ExperimentFactory, MembershipFactory

pytestmark = [pytest.mark.schemathesis, pytest.mark.django_db(transaction=True)]
EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "promptlab-hypothesis")  # not a .hypothesis folder in the checkout


def _load_schema():
    # At collection, from the app's own /api/schema/ (which reads no database). Loaded here
    # rather than through schemathesis.pytest.from_fixture, whose lazy loader relies on a
    # private attribute that pytest 9 no longer has.
    from promptlab.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return schema


schema = _load_schema()


@pytest.fixture
def existing(settings):
    """A project with a prompt on the demo model, a dataset, an experiment and a call, and a key of every scope."""
    from promptlab.celery import app

    settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.DEBUG = True  # see the module's docstring
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    owner = MembershipFactory(role=Role.OWNER)
    endpoint, _ = llm_services.endpoint_save(name="demo", display_name="Demo", model=f"{DEMO_PROVIDER}/echo")
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="greet", message="m", template="Hello {{ name }}", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    dataset = DatasetFactory(project=owner.project, name="cases")
    DatasetItem.objects.create(dataset=dataset, row=1, vars={"name": "Ada"})
    experiment = ExperimentFactory(project=owner.project, dataset=dataset, status="draft")
    call = PromptCall.objects.create(project=owner.project, prompt=prompt, prompt_name="greet", version=1, model="m", status="done")
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="fuzz", scopes=["read", "render", "invoke", "write", "run"])  # fmt: skip
    yield {"name": "greet", "dataset": "cases", "id": experiment.pk, "call_id": str(call.pk), "version": 1, "secret": secret}
    app.conf.task_always_eager = eager


_cases = itertools.count()


def _point_at_existing(case, existing) -> None:
    """Two cases in three use identifiers that exist (datasets' names are datasets' names) and
    no `project` parameter (any other value than the key's project is a 404)."""
    if next(_cases) % 3 == 0:
        return
    if case.query:
        case.query.pop("project", None)
    for name in list(case.path_parameters or {}):
        if name == "name":
            case.path_parameters[name] = existing["dataset"] if case.path.startswith("/api/v1/datasets/") else existing["name"]
        elif name in existing:
            case.path_parameters[name] = existing[name]


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)  # fmt: skip
def test_the_api_conforms_to_its_schema_and_never_answers_5xx(case, existing):
    _point_at_existing(case, existing)

    case.call_and_validate(headers={"Authorization": f"Bearer {existing['secret']}"}, checks=CHECKS)
