"""A small client for services that use promptlab's REST API: fetch, render and invoke prompts;
and, for a service's CI, run an experiment to its verdict (see promptlab_client.eval).

    from promptlab_client import PromptlabClient

    promptlab = PromptlabClient("https://promptlab.example.com", api_key=os.environ["PROMPTLAB_KEY"])
    prompt = promptlab.get("support-reply")                       # the production version
    text = promptlab.render("support-reply", {"customer": "Ada"})["text"]
    answer = promptlab.invoke("support-reply", {"customer": "Ada"}, fallback={"output": "Sorry, try again later."})

Fetches and renders are kept in an in-process cache:

- fresh for `ttl` seconds: answered from memory, no request;
- then stale for `stale_ttl` more seconds: answered from memory at once while one background
  thread revalidates the entry (with If-None-Match, so an unchanged prompt costs a 304);
- after that, fetched again before answering (still revalidated with the ETag).

When promptlab cannot be reached (connection refused, timeout, a 5xx, or 429), a cached answer
of any age is served; with none, the call's `fallback` is (a value, or a callable given the
error); with no fallback, `PromptlabUnavailable` is raised. Other refusals (unknown prompt,
missing variables, a bad key) raise `PromptlabError` with the API's code, message and
details: a fallback never hides a bug. `invoke` is never cached (every call is a model call,
logged by promptlab); its fallback covers promptlab or the model being unavailable.

Standard library and httpx only; thread-safe; no Django.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["PromptlabClient", "PromptlabError", "PromptlabUnavailable"]

logger = logging.getLogger("promptlab_client")

_NO_FALLBACK = object()


class PromptlabError(Exception):
    """promptlab refused the request: `status` (HTTP), `code` (e.g. not_found,
    missing_variables), `message` and `details` from its error body."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error", details: dict | None = None):
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class PromptlabUnavailable(PromptlabError):
    """promptlab could not answer: unreachable, timed out, throttled (429) or failing (5xx)."""


@dataclass
class _Entry:
    body: bytes  # the JSON answer: each caller gets its own parsed copy to change at will
    etag: str | None
    fetched_at: float  # on the client's clock


class PromptlabClient:
    """A client of one promptlab project: its API key's.

    `ttl` and `stale_ttl` are seconds (see the module's docstring); `max_entries` bounds the
    cache (least recently used entries go first). `timeout` is for fetches and renders;
    `invoke_timeout` for invokes, which wait for the model, and for the experiment calls.
    `project` (a slug) is checked on every request: a key of another project is refused. `clock`
    is for tests.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        ttl: float = 60.0,
        stale_ttl: float = 300.0,
        timeout: float = 2.0,
        invoke_timeout: float = 60.0,
        max_entries: int = 1024,
        project: str | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.ttl, self.stale_ttl = ttl, stale_ttl
        self.timeout, self.invoke_timeout = timeout, invoke_timeout
        self.max_entries = max_entries
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._http = http or httpx.Client()
        self._owns_http = http is None
        self._clock = clock
        self._cache: OrderedDict[tuple, _Entry] = OrderedDict()
        self._refreshing: set[tuple] = set()
        self._lock = threading.Lock()

    # --- The three operations -----------------------------------------------------------------

    def get(self, name: str, *, label: str | None = None, version: int | None = None, fallback: Any = _NO_FALLBACK) -> dict:
        """The prompt at `label` (default production) or `version`: name, version, labels,
        kind, template or messages, model, params, variables, ..."""
        return self._cached(("get", name, label, version), "GET", f"prompts/{quote(name)}/", _pin(label, version), None, fallback)

    def render(self, name: str, variables: Mapping[str, Any] | None = None, *, label: str | None = None,
               version: int | None = None, fallback: Any = _NO_FALLBACK) -> dict:  # fmt: skip
        """The prompt rendered with the variables: {"version", "text" or "messages", "warnings"}."""
        body = {"variables": dict(variables or {}), **_pin(label, version)}
        key = ("render", name, label, version, json.dumps(body["variables"], sort_keys=True, default=str))
        return self._cached(key, "POST", f"prompts/{quote(name)}/render/", None, body, fallback)

    def invoke(self, name: str, variables: Mapping[str, Any] | None = None, *, label: str | None = None,
               version: int | None = None, params: Mapping[str, Any] | None = None, wait_seconds: float | None = None,
               fallback: Any = _NO_FALLBACK) -> dict:  # fmt: skip
        """Call the prompt's model through promptlab: {"call_id", "status", "output", "usage",
        "cost_usd", "latency_ms", "version", ...}. Never cached."""
        body = {"variables": dict(variables or {}), **_pin(label, version)}
        if params:
            body["params"] = dict(params)
        if wait_seconds is not None:
            body["wait_seconds"] = wait_seconds
        timeout = self.invoke_timeout if wait_seconds is None else wait_seconds + self.timeout
        try:
            return _json(self._request("POST", f"prompts/{quote(name)}/invoke/", None, body, None, timeout))
        except PromptlabUnavailable as exc:
            return _fall_back(fallback, exc)

    # --- Experiments (never cached: their state moves) ------------------------------------------

    def experiment(self, experiment_id: int) -> dict:
        """The experiment: status (draft, running, scoring, finished or cancelled), runs counted
        by status, scoring {"scored", "to_score"}, variants, spend, ..."""
        return _json(self._request("GET", f"experiments/{int(experiment_id)}/", None, None, None, self.invoke_timeout))

    def experiment_create(self, spec: Mapping[str, Any]) -> dict:
        """A draft experiment from the body of POST /api/v1/experiments/: name, dataset, variants, evaluators, ..."""
        return _json(self._request("POST", "experiments/", None, dict(spec), None, self.invoke_timeout))

    def experiment_start(self, experiment_id: int) -> dict:
        """Start a draft: its variants are frozen to versions and its runs created."""
        return _json(self._request("POST", f"experiments/{int(experiment_id)}/start/", None, None, None, self.invoke_timeout))

    def comparison(self, experiment_id: int) -> dict:
        """Each variant's pass rate and mean score with 95% intervals, and each pair's verdict in words."""
        return _json(self._request("GET", f"experiments/{int(experiment_id)}/comparison/", None, None, None, self.invoke_timeout))

    # --- Housekeeping ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PromptlabClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- The cache ------------------------------------------------------------------------------

    def _cached(self, key: tuple, method: str, path: str, query: dict | None, body: dict | None, fallback: Any) -> dict:
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                age = self._clock() - entry.fetched_at
                if age < self.ttl:
                    return json.loads(entry.body)
                if age < self.ttl + self.stale_ttl:
                    if key not in self._refreshing:
                        self._refreshing.add(key)
                        threading.Thread(
                            target=self._refresh, args=(key, method, path, query, body), daemon=True, name="promptlab-refresh"
                        ).start()
                    return json.loads(entry.body)
        try:
            return self._fetch(key, method, path, query, body, entry)
        except PromptlabUnavailable as exc:
            if entry is not None:
                logger.warning("promptlab_client: serving the cached answer of %s: %s", path, exc)
                return json.loads(entry.body)
            return _fall_back(fallback, exc)

    def _refresh(self, key: tuple, method: str, path: str, query: dict | None, body: dict | None) -> None:
        try:
            with self._lock:
                entry = self._cache.get(key)
            self._fetch(key, method, path, query, body, entry)
        except PromptlabError as exc:  # the stale entry stays until its window ends
            logger.warning("promptlab_client: could not refresh %s: %s", path, exc)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _fetch(self, key: tuple, method: str, path: str, query: dict | None, body: dict | None, entry: _Entry | None) -> dict:
        etag = entry.etag if entry is not None else None
        response = self._request(method, path, query, body, etag, self.timeout)
        now = self._clock()
        if response.status_code == 304 and entry is not None:
            fresh = _Entry(entry.body, etag, now)
        else:
            _json(response)
            fresh = _Entry(response.content, response.headers.get("ETag"), now)
        with self._lock:
            self._cache[key] = fresh
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return json.loads(fresh.body)

    # --- HTTP -----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, query: dict | None, body: dict | None, etag: str | None,
                 timeout: float) -> httpx.Response:  # fmt: skip
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        if self.project is not None:
            query = {**(query or {}), "project": self.project}
        try:
            response = self._http.request(
                method, f"{self.base_url}/api/v1/{path}", params=query, json=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out, bad proxy...
            raise PromptlabUnavailable(f"promptlab is unreachable at {self.base_url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code < 400:
            return response
        error = _error_of(response)
        kind = PromptlabUnavailable if response.status_code >= 500 or response.status_code == 429 else PromptlabError
        raise kind(error.get("message") or response.reason_phrase, status=response.status_code,
                   code=error.get("code") or "error", details=error.get("details"))  # fmt: skip


def _pin(label: str | None, version: int | None) -> dict:
    return {"version": version} if version is not None else {"label": label} if label else {}


def _json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        raise PromptlabUnavailable(
            f"promptlab answered {response.status_code} with a body that is not JSON (a proxy in the way?)", status=response.status_code
        ) from None


def _error_of(response: httpx.Response) -> dict:
    """The API's {"error": {...}}, or {} when the body is not one (a proxy's page, say)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _fall_back(fallback: Any, exc: PromptlabUnavailable):
    if fallback is _NO_FALLBACK:
        raise exc
    logger.warning("promptlab_client: using the fallback: %s", exc)
    return fallback(exc) if callable(fallback) else fallback
