"""The REST API for prompts: fetch (cached, ETag), list, create, new version, versions,
render, invoke, labels, calls and their feedback. Each view validates its input with a
serializer, calls one service or selector, and serializes the answer; errors are mapped
once, in promptlab.api.

`ProjectApi` is the base of every project-scoped endpoint (experiments' too): it fixes the
project (an API key's own, or `?project=` for a signed-in person) and the actor services see.
"""

import functools

from django.conf import settings
from django.http import HttpResponse
from django.urls import path, register_converter
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from promptlab import dispatch
from promptlab.accounts.project_api import ProjectApi
from promptlab.api import SLUG, ErrorSerializer, named_in_body, page_of, paged
from promptlab.errors import Invalid
from promptlab.llm import selectors as llm_selectors
from prompts import selectors, services, serving
from prompts.models import Kind, PromptCallStatus
from prompts.rendering import RenderError, render_version
from prompts.versions import MAX_VERSION, reads_as_version, version_or_label, version_ref


class MissingVariables(Invalid):
    code = "missing_variables"


def naming_missing_variables(function):
    """Render errors that are only missing variables get their own code, so callers can tell
    them from template errors: details.missing lists the names."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RenderError as exc:
            if "missing" in exc.details:
                raise MissingVariables(exc.message, details=exc.details) from None
            raise

    return wrapper


# --- Serializers ----------------------------------------------------------------------------------


class VersionSerializer(serializers.Serializer):
    """One version of a prompt, as services fetch it."""

    name = serializers.SlugField()
    version = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField(), help_text="The labels on this version.")
    kind = serializers.ChoiceField(Kind.choices)
    template = serializers.CharField(allow_null=True, help_text="Text prompts; null for chat prompts.")
    messages = serializers.ListField(child=serializers.DictField(), allow_null=True, help_text="Chat prompts; null for text prompts.")
    model = serializers.CharField(allow_null=True, help_text="The model endpoint's name in the catalog.")
    provider_model = serializers.CharField(allow_null=True, help_text="LiteLLM's model string, e.g. openai/gpt-4o-mini.")
    params = serializers.DictField()
    variables = serializers.ListField(child=serializers.DictField(), help_text="Declared variables.")
    used_variables = serializers.ListField(child=serializers.CharField())
    strict_variables = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField(allow_blank=True, help_text="The change message of this version.")
    created_at = serializers.DateTimeField()


class PromptSummarySerializer(serializers.Serializer):
    name = serializers.SlugField()
    version = serializers.IntegerField(help_text="The latest version.")
    kind = serializers.ChoiceField(Kind.choices)
    model = serializers.CharField()
    labels = serializers.DictField(child=serializers.IntegerField(), help_text='Label name to version, e.g. {"production": 3}.')
    tags = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()


def summary(prompt) -> dict:
    return {
        "name": prompt.name, "version": prompt.version, "kind": prompt.kind, "model": prompt.endpoint.name,
        "labels": {label.name: label.version for label in prompt.labels.all()}, "tags": prompt.tags or [],
        "description": prompt.description, "updated_at": prompt.updated_at,
    }  # fmt: skip


VERSION = "[vV]?[1-9][0-9]{0,8}"  # a version as written in paths, query strings and bodies: 3 or v3


@extend_schema_field({
    "oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
              {"type": "string", "pattern": f"^{VERSION}$", "description": '"v3" or "3"'}],
})  # fmt: skip
class VersionField(serializers.Field):
    """A version number as a client writes it: 3, "3", "v3" or "V3" (read by prompts.versions)."""

    default_error_messages = {"invalid": 'Give a version number: 3 or "v3".'}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str) or len(str(data)) > 20:
            self.fail("invalid")
        try:
            number = version_ref(str(data))
        except Invalid as exc:
            raise serializers.ValidationError(exc.message) from None
        if number is None:
            self.fail("invalid")
        return number

    def to_representation(self, value):
        return value


def label_or_version(data: dict) -> dict:
    """A serializer's `label` and `version`, not both; a label written as a version ("v3")
    is that version, never a label of that name."""
    if "label" in data and "version" in data:
        raise serializers.ValidationError("Give a label or a version, not both.")
    if "label" in data:
        try:
            pin = version_or_label(data["label"])
        except Invalid as exc:
            raise serializers.ValidationError({"label": exc.message}) from None
        data = {**{key: value for key, value in data.items() if key != "label"}, **pin}
    return data


class PinSerializer(serializers.Serializer):
    """Which version: by label (default production; `latest` is the newest) or by number."""

    label = serializers.RegexField(SLUG, max_length=50, required=False, help_text='A label; "v3" or "3" means version 3.')
    version = VersionField(required=False, help_text='3 or "v3".')

    def validate(self, data):
        return label_or_version(data)


class PromptListQuery(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100, help_text="Part of the name.")
    tag = serializers.CharField(required=False, max_length=100)
    label = serializers.RegexField(SLUG, max_length=50, required=False)

    def validate_label(self, label):
        if reads_as_version(label):
            raise serializers.ValidationError(f"{label!r} is a version, not a label: this filter takes a label name such as production.")
        return label


class ContentSerializer(serializers.Serializer):
    """The fields of a prompt version; left out means unchanged (or the default for a new prompt)."""

    kind = serializers.ChoiceField(Kind.choices, required=False)
    template = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    messages = serializers.ListField(child=serializers.DictField(), required=False)
    model = serializers.RegexField(SLUG, max_length=64, required=False, help_text="A model endpoint's name in the catalog.")
    params = serializers.DictField(required=False)
    variables = serializers.ListField(child=serializers.DictField(), required=False)
    strict_variables = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    message = serializers.CharField(max_length=2000, help_text="What changed: kept with the version.")

    def fields_for_service(self, data: dict) -> dict:
        fields = {name: value for name, value in data.items() if name not in ("message", "name", "base_version", "model")}
        if "model" in data:
            fields["endpoint"] = named_in_body(llm_selectors.endpoint_get, name=data["model"])
        return fields


class PromptCreateSerializer(ContentSerializer):
    name = serializers.RegexField(SLUG, max_length=100)
    model = serializers.RegexField(SLUG, max_length=64, help_text="A model endpoint's name in the catalog.")


class PromptUpdateSerializer(ContentSerializer):
    base_version = VersionField(required=False, help_text="The version your change started from: refused if a newer one was saved since.")


class VersionListItemSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)
    author = serializers.CharField(allow_null=True, help_text="The email of who saved it.")
    created_at = serializers.DateTimeField()
    labels = serializers.ListField(child=serializers.CharField())


class RenderSerializer(PinSerializer):
    variables = serializers.DictField(required=False, default=dict)


class RenderedSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    text = serializers.CharField(required=False, help_text="Text prompts.")
    messages = serializers.ListField(child=serializers.DictField(), required=False, help_text="Chat prompts.")
    warnings = serializers.ListField(child=serializers.CharField())


class InvokeSerializer(RenderSerializer):
    params = serializers.DictField(required=False, default=dict, help_text="Overrides of the version's model parameters.")
    wait_seconds = serializers.FloatField(
        required=False, min_value=0.1, max_value=600, help_text="Wait at most this long (default: the model's timeout + 5 s)."
    )


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)


class CallErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    kind = serializers.CharField()
    message = serializers.CharField()


class CallSerializer(serializers.Serializer):
    call_id = serializers.UUIDField()
    status = serializers.ChoiceField(PromptCallStatus.choices)
    prompt = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField(allow_blank=True)
    model = serializers.CharField()
    output = serializers.CharField(allow_blank=True)
    finish_reason = serializers.CharField(allow_blank=True)
    usage = UsageSerializer()
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    cached = serializers.BooleanField()
    error = CallErrorSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def call_document(call) -> dict:
    tokens = (call.prompt_tokens, call.completion_tokens)
    return CallSerializer({
        "call_id": call.pk, "status": call.status, "prompt": call.prompt_name, "version": call.version, "label": call.label,
        "model": call.model, "output": call.output, "finish_reason": call.finish_reason,
        "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1],
                  "total_tokens": sum(tokens) if None not in tokens else None},
        "cost_usd": call.cost_usd, "latency_ms": call.latency_ms, "attempts": call.attempts, "cached": call.cached,
        "error": {"code": call.error_code, "kind": call.error_kind, "message": call.error} if call.status == PromptCallStatus.FAILED else None,
        "created_at": call.created_at, "finished_at": call.finished_at,
    }).data  # fmt: skip


class LabelMoveSerializer(serializers.Serializer):
    label = serializers.RegexField(SLUG, max_length=50)
    version = VersionField(required=False, help_text='Point the label here: 3 or "v3".')
    rollback = serializers.BooleanField(required=False, default=False, help_text="Move the label back to where its last move took it from.")
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    override_reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000,
        help_text="A written reason to move production anyway: an admin's past a promotion gate that did not pass, "
        "an owner's (signed in, not with an API key) without a required approval.",
    )  # fmt: skip

    def validate(self, data):
        if ("version" in data) == data["rollback"]:
            raise serializers.ValidationError("Give either a version or rollback: true.")
        return data


class LabelSerializer(serializers.Serializer):
    label = serializers.CharField()
    version = serializers.IntegerField()
    previous_version = serializers.IntegerField(allow_null=True)


class CallFeedbackSerializer(serializers.Serializer):
    thumbs = serializers.ChoiceField(["up", "down"], required=False, allow_null=True)
    score = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class FeedbackSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    call_id = serializers.UUIDField()
    thumbs = serializers.ChoiceField(["up", "down"], allow_null=True)
    score = serializers.FloatField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


THUMBS = {"up": 1, "down": -1, None: None}
LABEL_OR_VERSION = [
    OpenApiParameter("label", str, required=False, pattern=SLUG,
                     description="Default production; latest is the newest version; v3 (or 3) means version 3."),
    OpenApiParameter("version", str, required=False, pattern=f"^{VERSION}$", description="A version instead of a label: 3 or v3."),
]
NOT_MODIFIED = {304: OpenApiResponse(description="Not modified: the If-None-Match ETag is current.")}


class VersionConverter:
    """`versions/3/` and `versions/v3/` alike."""

    regex = VERSION

    def to_python(self, value: str) -> int:
        return version_ref(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(VersionConverter, "version")


# --- Views ----------------------------------------------------------------------------------------


def served_response(request, served: serving.Served, cache_control: str) -> HttpResponse:
    """The document with its ETag, or 304 when the client's copy is current."""
    # If-None-Match compares weakly: W/"x" matches "x".
    current = {etag.removeprefix("W/") for etag in parse_etags(request.headers.get("If-None-Match", ""))}
    if served.etag in current or "*" in current:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(served.body, content_type="application/json")
    response["ETag"] = served.etag
    response["Cache-Control"] = cache_control
    response["Vary"] = "Authorization, Cookie"
    return response


class PromptListApi(ProjectApi):
    required_scope = {"GET": "read", "POST": "write"}

    @extend_schema(
        operation_id="prompts_list", parameters=[PromptListQuery],
        responses={200: paged(PromptSummarySerializer)},
        description="The project's prompts by name; filter by part of the name, a tag, or a label they have.",
    )  # fmt: skip
    def get(self, request):
        query = self.valid(PromptListQuery, request.query_params)
        prompts = selectors.prompt_search(project=self.project, **query)
        return page_of(self, prompts, lambda rows: PromptSummarySerializer([summary(p) for p in rows], many=True).data)

    @extend_schema(
        operation_id="prompts_create", request=PromptCreateSerializer, responses={201: VersionSerializer},
        description="Create a prompt as version 1, with a change message.",
    )  # fmt: skip
    def post(self, request):
        data = self.valid(PromptCreateSerializer, request.data)
        fields = PromptCreateSerializer().fields_for_service(data)
        prompt = services.prompt_create(project=self.project, actor=self.actor, name=data["name"], message=data["message"], **fields)
        record = selectors.prompt_version(prompt=prompt, version=prompt.version)
        return Response(serving.version_document(prompt, record), status=201)


class PromptApi(ProjectApi):
    required_scope = {"GET": "read", "PATCH": "write"}

    @extend_schema(
        operation_id="prompts_get", parameters=LABEL_OR_VERSION,
        responses={200: VersionSerializer, **NOT_MODIFIED},
        description="The prompt at a label (default production) or version: cached, with an ETag for If-None-Match.",
    )  # fmt: skip
    def get(self, request, name: str):
        pin = self.valid(PinSerializer, request.query_params)
        served = serving.prompt_served(project_id=self.project_id, name=name, **pin)
        return served_response(request, served, "private, max-age=60" if "version" in pin else "private, no-cache")

    @extend_schema(
        operation_id="prompts_update", request=PromptUpdateSerializer, responses={200: VersionSerializer},
        description="Save the changed fields as the next version (a change that changes nothing saves none).",
    )  # fmt: skip
    def patch(self, request, name: str):
        data = self.valid(PromptUpdateSerializer, request.data)
        prompt = selectors.prompt_get(project=self.project, name=name)
        fields = PromptUpdateSerializer().fields_for_service(data)
        prompt = services.prompt_update(
            prompt=prompt, actor=self.actor, message=data["message"], base_version=data.get("base_version"), **fields
        )
        record = selectors.prompt_version(prompt=prompt, version=prompt.version)
        return Response(serving.version_document(prompt, record))


class VersionListApi(ProjectApi):
    required_scope = "read"

    @extend_schema(operation_id="prompts_versions_list", responses={200: paged(VersionListItemSerializer)},
                   description="Every version of the prompt, newest first.")  # fmt: skip
    def get(self, request, name: str):
        prompt = selectors.prompt_get(project=self.project, name=name)
        labels = selectors.prompt_labels_by_version(prompt=prompt)

        def documents(rows):
            return [
                {"version": r.version, "message": r.history_change_reason or "", "author": r.history_user and r.history_user.email,
                 "created_at": r.history_date, "labels": labels.get(r.version, [])}
                for r in rows
            ]  # fmt: skip

        return page_of(self, selectors.prompt_timeline(prompt=prompt), lambda rows: VersionListItemSerializer(documents(rows), many=True).data)


class VersionApi(ProjectApi):
    required_scope = "read"

    @extend_schema(
        operation_id="prompts_versions_get", responses={200: VersionSerializer, **NOT_MODIFIED},
        parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH, pattern=f"^{VERSION}$", description="3 or v3.")],
        description="One version of the prompt (cached, with an ETag).",
    )  # fmt: skip
    def get(self, request, name: str, version: int):
        served = serving.prompt_served(project_id=self.project_id, name=name, version=version)
        return served_response(request, served, "private, max-age=60")


class RenderApi(ProjectApi):
    required_scope = "render"

    @extend_schema(
        operation_id="prompts_render", request=RenderSerializer,
        responses={200: RenderedSerializer, 503: OpenApiResponse(ErrorSerializer, description="Every render slot of the "
                   "server stayed busy (code render_busy): try again after Retry-After seconds.")},
        description="Render the prompt at a label (default production) or version with the variables. "
        "Missing variables answer 400 with code missing_variables and their names in details.missing.",
    )  # fmt: skip
    @naming_missing_variables
    def post(self, request, name: str):
        data = self.valid(RenderSerializer, request.data)
        prompt = selectors.prompt_get(project=self.project, name=name)
        pin = {"version": data["version"]} if "version" in data else {"label": data.get("label", serving.DEFAULT_LABEL)}
        rendered = render_version(selectors.prompt_version(prompt=prompt, **pin), data["variables"])
        document = {"version": rendered.version, "warnings": rendered.warnings}
        document |= {"text": rendered.text} if rendered.text is not None else {"messages": rendered.messages}
        return Response(document)


class InvokeApi(ProjectApi):
    required_scope = "invoke"

    @extend_schema(
        operation_id="prompts_invoke", request=InvokeSerializer,
        responses={
            200: CallSerializer,
            202: OpenApiResponse(CallSerializer, description="Recorded, not yet sent: the broker is unreachable, and "
                                 "the call is made once it is back. GET calls/{id}/ for its result."),
            502: OpenApiResponse(ErrorSerializer, description="The model failed (details.call_id names the logged call)."),
            503: OpenApiResponse(ErrorSerializer, description="The model stayed unavailable after retries (details.call_id), "
                                 "or every render slot stayed busy (code render_busy, with Retry-After)."),
            504: OpenApiResponse(ErrorSerializer, description="Not finished in time: GET calls/{details.call_id}/ later."),
        },
        description="Render the prompt and call its model through a worker; the call is logged. On timeout: 504 "
        "with the call id, whose result GET calls/{id}/ returns once it is done.",
    )  # fmt: skip
    @naming_missing_variables
    def post(self, request, name: str):
        data = self.valid(InvokeSerializer, request.data)
        prompt = selectors.prompt_get(project=self.project, name=name)
        pin = {"version": data["version"]} if "version" in data else {"label": data.get("label")}
        call = services.prompt_call_create(
            prompt=prompt, actor=self.actor, variables=data["variables"], params=data["params"], api_key_id=self.api_key_id, **pin
        )
        if dispatch.deferring():  # waiting could not help: the sweeper sends it once the broker is back
            return Response(call_document(call), status=202)
        timeout = call.endpoint.timeout_seconds + settings.API_INVOKE_WAIT_MARGIN_SECONDS
        wait = min(data.get("wait_seconds", timeout), timeout, settings.API_INVOKE_MAX_WAIT_SECONDS)
        if not selectors.prompt_call_wait(call=call, seconds=wait):
            raise InvokeTimeout(
                f"The call did not finish within {wait:g}s; it goes on: GET /api/v1/calls/{call.pk}/ for its result.",
                details={"call_id": str(call.pk)},
            )
        if call.status == PromptCallStatus.FAILED:
            raise CallFailed(call)
        return Response(call_document(call))


class InvokeTimeout(Invalid):
    code = "invoke_timeout"


class CallFailed(Invalid):
    """The model call failed: 502, or 503 when it was unavailable (rate limited, down) after retries."""

    def __init__(self, call):
        super().__init__(f"The model call failed: {call.error}", details={"call_id": str(call.pk), "kind": call.error_kind})
        self.code = "llm_unavailable" if call.error_code == "llm_unavailable" else "llm_failed"


class LabelApi(ProjectApi):
    required_scope = "write"

    @extend_schema(
        operation_id="prompts_labels_move", request=LabelMoveSerializer, responses={200: LabelSerializer},
        description="Point a label at a version (promote), or roll it back to where it was. Moving production needs "
        "a key made by an admin (or an admin's session).",
    )  # fmt: skip
    def post(self, request, name: str):
        data = self.valid(LabelMoveSerializer, request.data)
        prompt = selectors.prompt_get(project=self.project, name=name)
        before = selectors.label_version(prompt=prompt, label=data["label"])
        if data["rollback"]:
            label = services.label_rollback(prompt=prompt, actor=self.actor, label=data["label"])
        else:
            label = services.label_move(
                prompt=prompt, actor=self.actor, label=data["label"], version=data["version"], message=data["message"],
                override_reason=data["override_reason"],
            )  # fmt: skip
        return Response(LabelSerializer({"label": label.name, "version": label.version, "previous_version": before}).data)


class CallApi(ProjectApi):
    required_scope = ("invoke", "read")

    @extend_schema(operation_id="calls_get", responses={200: CallSerializer},
                   description="A call made through invoke: pending and running until a worker has finished it.")  # fmt: skip
    def get(self, request, call_id):
        return Response(call_document(selectors.prompt_call_get(project=self.project, call_id=call_id)))


class FeedbackApi(ProjectApi):
    required_scope = "invoke"

    @extend_schema(operation_id="calls_feedback", request=CallFeedbackSerializer, responses={201: FeedbackSerializer},
                   description="What a user thought of the call's answer: thumbs up or down, a score from 0 to 1, a comment.")  # fmt: skip
    def post(self, request, call_id):
        data = self.valid(CallFeedbackSerializer, request.data)
        call = selectors.prompt_call_get(project=self.project, call_id=call_id)
        feedback = services.prompt_call_feedback(
            call=call, actor=self.actor, thumbs=THUMBS[data.get("thumbs")], score=data.get("score"), comment=data["comment"],
            api_key_id=self.api_key_id,
        )  # fmt: skip
        document = {"id": feedback.pk, "call_id": call.pk, "thumbs": {1: "up", -1: "down"}.get(feedback.thumbs),
                    "score": feedback.score, "comment": feedback.comment, "created_at": feedback.created_at}  # fmt: skip
        return Response(FeedbackSerializer(document).data, status=201)


urlpatterns = [
    path("prompts/", PromptListApi.as_view(), name="api-prompts"),
    path("prompts/<slug:name>/", PromptApi.as_view(), name="api-prompt"),
    path("prompts/<slug:name>/versions/", VersionListApi.as_view(), name="api-prompt-versions"),
    path("prompts/<slug:name>/versions/<version:version>/", VersionApi.as_view(), name="api-prompt-version"),
    path("prompts/<slug:name>/render/", RenderApi.as_view(), name="api-prompt-render"),
    path("prompts/<slug:name>/invoke/", InvokeApi.as_view(), name="api-prompt-invoke"),
    path("prompts/<slug:name>/labels/", LabelApi.as_view(), name="api-prompt-labels"),
    path("calls/<uuid:call_id>/", CallApi.as_view(), name="api-call"),
    path("calls/<uuid:call_id>/feedback/", FeedbackApi.as_view(), name="api-call-feedback"),
]
