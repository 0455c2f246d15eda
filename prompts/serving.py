"""Serving prompts to services: the resolved version of a prompt (by label or number) as the
JSON body the API sends, cached per (project, name, label or version), with its ETag.

Invalidation uses a generation token per prompt rather than deleting keys: every entry
records the token it was computed under and a fetch reads the entry and the current token
in one round trip, so an entry computed from data read before a save or label move (a
reader racing the writer) is never served after it. The prompt services set a new token
when a version is saved, a label moves or the prompt is deleted, once right away and once
after commit. Entries also expire after PROMPT_CACHE_SECONDS, which bounds staleness if the
cache was unreachable when a token had to change.

The cache is an accelerator, never a dependency: with Redis down every fetch is answered
from the database.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from promptlab.errors import NotFound
from promptlab.llm.models import ModelEndpoint
from prompts import selectors
from prompts.models import Label, Prompt

logger = structlog.get_logger(__name__)

DEFAULT_LABEL = "production"


@dataclass(frozen=True)
class Served:
    body: bytes  # the JSON document
    etag: str  # quoted, ready for the ETag header
    version: int
    cached: bool


def _keys(project_id: int, name: str, label: str | None, version: int | None) -> tuple[str, str]:
    pinned = f"v{version}" if version is not None else f"l:{label}"
    return f"serving:gen:{project_id}:{name}", f"serving:prompt:{project_id}:{name}:{pinned}"


def prompt_served(*, project_id: int, name: str, label: str | None = None, version: int | None = None) -> Served:
    """The prompt at `version`, or at `label` (default production; `latest` is the newest
    version), from the cache when it holds it. Raises NotFound naming what does not exist."""
    if version is None:
        label = label or DEFAULT_LABEL
    generation_key, entry_key = _keys(project_id, name, label, version)
    found = cache.get_many([generation_key, entry_key])
    generation = found.get(generation_key)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(generation_key, generation, timeout=None):
            generation = cache.get(generation_key)
    entry = found.get(entry_key)
    if entry is not None and entry[0] == generation:
        return Served(body=entry[1], etag=entry[2], version=entry[3], cached=True)
    body, served_version = _resolve(project_id, name, label, version)
    served = Served(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', version=served_version, cached=False)
    cache.set(entry_key, (generation, served.body, served.etag, served.version), timeout=settings.PROMPT_CACHE_SECONDS)
    return served


def _resolve(project_id: int, name: str, label: str | None, version: int | None) -> tuple[bytes, int]:
    prompt = Prompt.objects.filter(project_id=project_id, name=name).first()
    if prompt is None:
        raise NotFound(f"There is no prompt named {name!r} in this project.", details={"prompt": name})
    record = selectors.prompt_version(prompt=prompt, version=version, label=label)
    return json.dumps(version_document(prompt, record), cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode(), record.version  # fmt: skip


def version_document(prompt: Prompt, record, *, labels: list[str] | None = None, endpoint: ModelEndpoint | None = None) -> dict:
    """What the API says about one version of a prompt. `labels` and `endpoint` are read when
    not given (lists pass them in to stay at a fixed number of queries)."""
    if labels is None:
        labels = list(Label.objects.filter(prompt=prompt, version=record.version).order_by("name").values_list("name", flat=True))
    if endpoint is None:
        endpoint = ModelEndpoint.objects.filter(pk=record.endpoint_id).first()
    text = record.kind == "text"
    return {
        "name": prompt.name,
        "version": record.version,
        "labels": labels,
        "kind": record.kind,
        "template": record.template if text else None,
        "messages": None if text else record.messages,
        "model": endpoint.name if endpoint else None,
        "provider_model": endpoint.model if endpoint else None,
        "params": record.params or {},
        "variables": record.variables or [],
        "used_variables": record.used_variables or [],
        "strict_variables": record.strict_variables,
        "description": record.description,
        "tags": record.tags or [],
        "message": record.history_change_reason or "",
        "created_at": record.history_date,
    }


def prompt_cache_invalidate(*, project_id: int, name: str) -> None:
    """Make every cached form of the prompt stale: now, and again once the transaction commits
    (a reader that read the old rows before the commit must not leave them cached)."""
    generation_key, _ = _keys(project_id, name, None, 0)

    def bump():
        cache.set(generation_key, uuid.uuid4().hex, timeout=None)

    bump()
    transaction.on_commit(bump)
