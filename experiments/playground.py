"""The playground: render a prompt version with sample variables and call up to four models
side by side, then keep any answer as a dataset item.

The web process only renders and records: every call is made by a worker
(`experiments.playground_call`) through the gateway. A call still open long after it was
made is shown as stale, so a page never waits forever for a worker that died or never ran.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Max, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from experiments.models import Dataset, DatasetItem, PlaygroundCall, PlaygroundCallStatus
from promptlab import dispatch, leases, sweeper
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import DomainError, Invalid
from promptlab.llm import catalog, gateway
from promptlab.llm.errors import GatewayError
from promptlab.llm.models import ModelEndpoint
from promptlab.llm.params import validate_params
from prompts import selectors
from prompts.models import Prompt
from prompts.rendering import render_version

logger = structlog.get_logger(__name__)

MAX_ENDPOINTS = 4
# Past the hard time limit of the task (tasks.playground_call) plus some queueing, an open
# call will get no answer: its worker died, or none is running.
CALL_DEADLINE = timedelta(seconds=360)
OPEN = (PlaygroundCallStatus.PENDING, PlaygroundCallStatus.RUNNING)


# --- Writes --------------------------------------------------------------------------------


@transaction.atomic
def playground_run(*, prompt: Prompt, actor, version: int | None, variables: dict, endpoints: list[ModelEndpoint],
                   params: dict | None = None) -> uuid.UUID:  # fmt: skip
    """Render the version (None: the latest) with the variables and enqueue one call per
    endpoint; returns the batch that groups them. Nothing is created when it cannot run."""
    authorize(actor, prompt.project, Action.EDIT)
    if not isinstance(variables, dict):
        raise Invalid("The variables must be an object of names to values.", details={"variables": type(variables).__name__})
    if not 1 <= len(endpoints) <= MAX_ENDPOINTS:
        raise Invalid(f"Pick between 1 and {MAX_ENDPOINTS} models.", details={"endpoints": len(endpoints)})
    if len({endpoint.pk for endpoint in endpoints}) < len(endpoints):
        raise Invalid("Pick each model only once.")
    for endpoint in endpoints:
        catalog.endpoint_credentials(endpoint)  # disabled, a refused api_base or a missing key: say so now
    record = selectors.prompt_version(prompt=prompt, version=version)
    rendered = render_version(record, variables)
    messages = rendered.messages or [{"role": "user", "content": rendered.text}]
    params = validate_params({**(record.params or {}), **(params or {})})
    batch = uuid.uuid4()
    calls = PlaygroundCall.objects.bulk_create(
        PlaygroundCall(batch=batch, project_id=prompt.project_id, user=actor, prompt=prompt, version=record.version,
                       endpoint=endpoint, vars=variables, messages=messages, params=params)
        for endpoint in endpoints
    )  # fmt: skip
    from experiments.tasks import playground_call

    for call in calls:
        dispatch.send_on_commit(playground_call, call.pk)
    logger.info("experiments.playground_run", batch=str(batch), prompt_id=prompt.pk, version=record.version, calls=len(calls))
    return batch


def playground_call_execute(*, call_id: int) -> PlaygroundCall | None:
    """Claim the call with a compare-and-set, when it is pending or its worker died (its lease ran
    out): a duplicate delivery finds it taken and calls nothing. Call the model through the gateway
    under a lease renewed meanwhile, and record the answer or the error while the claim holds."""
    claimed = leases.claim(PlaygroundCall.objects.filter(pk=call_id))
    if claimed is None:
        logger.info("experiments.playground_call_taken", call_id=call_id)
        return None
    call = PlaygroundCall.objects.select_related("endpoint").get(pk=call_id)
    try:
        with leases.held(claimed):
            result = gateway.complete(endpoint=call.endpoint, messages=call.messages, params=call.params)
    except GatewayError as exc:  # the gateway has retried what could clear up, and waited on busy endpoints
        return _finish(call, claimed, PlaygroundCallStatus.FAILED, **gateway.failure_fields(exc))
    except DomainError as exc:  # the endpoint was disabled or lost its key since the run was asked for
        return _finish(call, claimed, PlaygroundCallStatus.FAILED, error=exc.message, error_kind=exc.code)
    except Exception as exc:  # a bug must not leave the page waiting on a call that will never finish
        logger.exception("experiments.playground_call_crashed", call_id=call_id)
        return _finish(call, claimed, PlaygroundCallStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}", error_kind="internal")
    return _finish(call, claimed, PlaygroundCallStatus.DONE, **gateway.answer_fields(result))


def _finish(call: PlaygroundCall, claimed: QuerySet, status: str, **fields) -> PlaygroundCall | None:
    """Write the result only while this claim holds the call (else another worker's answer is kept)."""
    fields.update(status=status, finished_at=timezone.now(), lease_until=None)
    if not claimed.update(**fields):
        logger.info("experiments.playground_call_lost", call_id=call.pk)
        return None
    for name, value in fields.items():
        setattr(call, name, value)
    logger.info("experiments.playground_call_finished", call_id=call.pk, status=status, error_kind=fields.get("error_kind", ""))
    return call


@sweeper.recovery
def playground_calls_recover(stale_before: datetime | None = None) -> int:
    """Send again the playground calls whose worker died or whose message was lost
    (leases.stranded: pending since before `stale_before`, default a lease ago). Returns how many."""
    from experiments.tasks import playground_call

    call_ids = leases.stranded(PlaygroundCall.objects.all(), pending_before=stale_before)
    for call_id in call_ids:
        dispatch.send(playground_call, call_id)
    return len(call_ids)


@transaction.atomic
def playground_save_item(*, call: PlaygroundCall, actor, dataset: Dataset) -> DatasetItem:
    """Append the call's variables and answer to the dataset as its next row, noting where it came from."""
    authorize(actor, dataset.project, Action.EDIT)
    if dataset.project_id != call.project_id:
        raise Invalid("The dataset belongs to another project.", details={"dataset": dataset.name})
    if call.status != PlaygroundCallStatus.DONE:
        raise Invalid("Only a call that answered can be saved as a dataset item.", details={"status": call.status})
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)  # rows are numbered one writer at a time, as imports do
    row = (DatasetItem.objects.filter(dataset=dataset).aggregate(last=Max("row"))["last"] or 0) + 1
    metadata = {
        "source": "playground", "prompt": call.prompt.name, "version": call.version, "endpoint": call.endpoint.name,
        "playground_call": call.pk,
    }  # fmt: skip
    item = DatasetItem.objects.create(dataset=dataset, row=row, vars=call.vars, expected=call.output, metadata=metadata)
    logger.info("experiments.playground_item_saved", call_id=call.pk, dataset_id=dataset.pk, row=row)
    return item


# --- Reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One field of the playground form."""

    name: str
    type: str = "string"
    required: bool = True
    default: object = None
    description: str = ""
    declared: bool = True


def playground_variables(record) -> list[Variable]:
    """The version's declared variables in their order, then the ones its templates use
    without declaring them (a chat placeholder takes a list of messages)."""
    declared = [
        Variable(name=spec["name"], type=spec.get("type", "string"), default=spec.get("default"),
                 required=spec.get("required") is not False and spec.get("default") is None,
                 description=spec.get("description") or "")
        for spec in record.variables or []
    ]  # fmt: skip
    names = {variable.name for variable in declared}
    placeholders = set(record.placeholders())
    undeclared = [
        Variable(name=name, type="list" if name in placeholders else "string", declared=False)
        for name in sorted(set(record.used_variables) - names)
    ]
    return declared + undeclared


def playground_version(*, prompt: Prompt, version: int | None = None, label: str | None = None):
    """The version asked for, by number or label (NotFound if it does not exist), else the
    production version when there is one, else the latest (None for a prompt without versions)."""
    if version is not None or label is not None:
        return selectors.prompt_version(prompt=prompt, version=version, label=label)
    return selectors.version_for_include(project_id=prompt.project_id, name=prompt.name, pin=None)


def playground_versions(*, prompt: Prompt) -> list[dict]:
    """Every version, newest first: number, change message and the labels on it (prompt.labels prefetched)."""
    labels = selectors.prompt_labels_by_version(prompt=prompt)
    versions = prompt.history.order_by("-version").values_list("version", "history_change_reason")
    return [{"version": number, "message": message or "", "labels": labels.get(number, [])} for number, message in versions]


def playground_endpoints() -> QuerySet[ModelEndpoint]:
    return ModelEndpoint.objects.filter(enabled=True).order_by("display_name", "pk")


def playground_calls(*, project: Project, batch: uuid.UUID) -> list[PlaygroundCall]:
    """The calls of one batch in the order asked for, each with `stale` (open past the deadline)."""
    stale = Q(status__in=OPEN, created_at__lt=timezone.now() - CALL_DEADLINE)
    calls = (
        PlaygroundCall.objects.filter(project=project, batch=batch)
        .select_related("endpoint", "prompt")
        .annotate(stale=ExpressionWrapper(stale, output_field=BooleanField()))
        .order_by("id")
    )
    return list(calls)


def playground_call_get(*, project: Project, pk: int) -> PlaygroundCall:
    """The call if it belongs to the project, else 404."""
    return get_object_or_404(PlaygroundCall.objects.select_related("endpoint", "prompt"), pk=pk, project=project)
