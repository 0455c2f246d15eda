"""A fake OpenAI-compatible HTTP server on 127.0.0.1, so LiteLLM makes real HTTP calls in tests and benchmarks.

Standard library only: a ThreadingHTTPServer in a daemon thread, HTTP/1.1 keep-alive, every answer
written in one send with a Content-Length, Nagle off, nothing logged.

    server = FakeOpenAI().start()       # port=0: a free port is picked
    litellm.completion(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-fake", ...)
    server.requests                     # [{"path", "headers" (lower-case keys), "body" (JSON or None)}]
    server.script(Scripted.error(429, "slow down", headers={"Retry-After": "1"}), Scripted.content('{"a": 1}'))
    server.latency = 0.2                # seconds slept before answering every request
    server.reset()                      # forget requests and script, latency back to 0
    server.stop()

Scripted responses (`server.script(...)` queues them; each of the next requests, whatever its path,
takes one, in order; with the queue empty the deterministic default answer is sent):

- ``Scripted.error(status, message="...", headers=None, type=None, code=None)``: that HTTP status with
  ``{"error": {"message", "type", "code", "param": None}}``. ``type`` defaults by status
  (400 invalid_request_error, 401 authentication_error, 403 permission_error, 404 not_found_error,
  429 rate_limit_error, 5xx server_error); ``code`` defaults to None. Examples:
  ``Scripted.error(400, "This model's maximum context length is 8192 tokens...", code="context_length_exceeded")``,
  ``Scripted.error(400, "Your request was rejected ...", code="content_policy_violation")``
  (Azure spells it ``code="content_filter"``).
- ``Scripted.delay(seconds)``: the default answer, sent after sleeping ``seconds`` (provokes timeouts).
- ``Scripted.garbage(body=b"<html>502 Bad Gateway from proxy</html>", status=200, content_type="text/html")``:
  a malformed body sent as is.
- ``Scripted.content(text, finish_reason="stop")``: a normal chat completion whose message content is
  exactly ``text`` (usage counted as for the default answer).
- ``Scripted.redirect(location, status=307, body=b"")``: that redirect to ``location`` (e.g. another
  server's URL), with ``body`` as a JSON answer.

Default answers:

- POST /v1/chat/completions: ``"fake answer to: " + <content of the last message>`` (list content: its
  text parts joined by spaces). With ``response_format`` of type json_object / json_schema the answer
  is ``json.dumps({"answer": <last message content>})``. usage: prompt_tokens = words in all message
  contents + 3 per message, completion_tokens = words in the answer. With ``max_tokens`` (or
  ``max_completion_tokens``) below that, the answer is cut to its first max_tokens words and
  finish_reason is "length". ``"stream": true`` is refused with a 400.
- POST /v1/embeddings: one deterministic 8-dim unit vector per input string (from its sha256;
  base64 float32 if ``encoding_format`` is "base64"); usage.prompt_tokens = words in all inputs.
- anything else: 404 with an OpenAI-style error.
"""

import base64
import hashlib
import json
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_700_000_000
_REASONS = {
    200: "OK", 307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}  # fmt: skip
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 409: "conflict_error", 422: "invalid_request_error", 429: "rate_limit_error",
}  # fmt: skip


@dataclass
class Scripted:
    """One queued response; build it with error(), delay(), garbage() or content()."""

    kind: str
    status: int = 200
    message: str = ""
    type: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    body: bytes = b""
    content_type: str = "application/json"
    text: str = ""
    finish_reason: str = "stop"

    @classmethod
    def error(cls, status: int, message: str = "fake error", headers: dict | None = None, type: str | None = None, code: str | None = None) -> "Scripted":
        error_type = type or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return cls("error", status=status, message=message, type=error_type, code=code, headers=dict(headers or {}))

    @classmethod
    def delay(cls, seconds: float) -> "Scripted":
        return cls("delay", seconds=seconds)

    @classmethod
    def garbage(cls, body: bytes = b"<html>502 Bad Gateway from proxy</html>", status: int = 200, content_type: str = "text/html") -> "Scripted":
        return cls("garbage", status=status, body=body, content_type=content_type)

    @classmethod
    def content(cls, text: str, finish_reason: str = "stop") -> "Scripted":
        return cls("content", text=text, finish_reason=finish_reason)

    @classmethod
    def redirect(cls, location: str, status: int = 307, body: bytes = b"") -> "Scripted":
        return cls("garbage", status=status, body=body, headers={"Location": location})


def error_body(message: str, type: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


def _words(text: str) -> int:
    return len(text.split())


def _text(content: Any) -> str:
    """A message's content as text: list content is its text parts joined by spaces."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return str(content)


def embedding(text: str) -> list[float]:
    """A deterministic L2-normalised 8-dim vector with values in [-1, 1]."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [int.from_bytes(digest[i : i + 2], "big") / 32767.5 - 1.0 for i in range(0, 16, 2)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "FakeOpenAI/1.0"
    sys_version = ""
    fake: "FakeOpenAI"  # set on the subclass made per server

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.fake._track(self.connection, add=True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, add=False)

    def do_POST(self):
        self._serve()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self):
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        number, scripted = self.fake._record({"path": path, "headers": headers, "body": body})
        if self.fake.latency:
            time.sleep(self.fake.latency)
        status, payload, content_type, headers = self.fake._answer(path, body, number, scripted)
        self._send(status, payload, content_type, headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str]):
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            "Connection: close" if self.close_connection else "Connection: keep-alive",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        except OSError:  # the client gave up (a timeout) or the server is stopping
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a dropped connection is not worth a traceback on stderr


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with scripted failures; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.latency: float = 0.0
        self.requests: list[dict] = []
        self._queue: list[Scripted] = []
        self._lock = threading.Lock()
        self._connections: set = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._served = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> "FakeOpenAI":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-openai-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # kept-alive connections must not outlive the server
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.latency = 0.0

    def script(self, *responses: Scripted) -> None:
        with self._lock:
            self._queue.extend(responses)

    # -- internals, called from the handler threads --

    def _track(self, connection, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(self, request: dict) -> tuple[int, Scripted | None]:
        with self._lock:
            self.requests.append(request)
            self._served += 1
            return self._served, (self._queue.pop(0) if self._queue else None)

    def _answer(self, path: str, body: Any, number: int, scripted: Scripted | None) -> tuple[int, bytes, str, dict]:
        """(status, body bytes, content type, extra headers) for one request."""
        if scripted is not None:
            if scripted.kind == "error":
                payload = error_body(scripted.message, scripted.type, scripted.code)
                return scripted.status, json.dumps(payload).encode(), "application/json", scripted.headers
            if scripted.kind == "garbage":
                return scripted.status, scripted.body, scripted.content_type, scripted.headers
            if scripted.kind == "delay":
                time.sleep(scripted.seconds)
        if path not in ("/v1/chat/completions", "/v1/embeddings"):
            return _error(404, f"Invalid URL ({path})", code="unknown_url")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        if body.get("stream"):
            return _error(400, "streaming is not supported by the fake server")
        if path == "/v1/embeddings":
            return _json(_embeddings(body))
        return _json(_chat(body, number, scripted if scripted is not None and scripted.kind == "content" else None))


def _json(payload: dict, status: int = 200) -> tuple[int, bytes, str, dict]:
    return status, json.dumps(payload).encode(), "application/json", {}


def _error(status: int, message: str, code: str | None = None) -> tuple[int, bytes, str, dict]:
    return _json(error_body(message, _ERROR_TYPES.get(status, "invalid_request_error"), code), status)


def _chat(body: dict, number: int, scripted: Scripted | None) -> dict:
    messages = body.get("messages") or []
    texts = [_text(message.get("content")) if isinstance(message, dict) else "" for message in messages]
    last = texts[-1] if texts else ""
    prompt_tokens = sum(_words(text) for text in texts) + 3 * len(messages)
    finish_reason = "stop"
    if scripted is not None:
        answer, finish_reason = scripted.text, scripted.finish_reason
    else:
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
            answer = json.dumps({"answer": last})
        else:
            answer = "fake answer to: " + last
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        if isinstance(limit, int) and _words(answer) > limit:
            answer, finish_reason = " ".join(answer.split()[:limit]), "length"
    completion_tokens = _words(answer)
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model"),
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer, "refusal": None}, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def _embeddings(body: dict) -> dict:
    inputs = body.get("input")
    if not isinstance(inputs, list):
        inputs = [inputs]
    texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
    tokens = sum(_words(text) for text in texts)
    vectors = [embedding(text) for text in texts]
    if body.get("encoding_format") == "base64":  # as OpenAI does: little-endian float32, base64-encoded
        vectors = [base64.b64encode(struct.pack("<8f", *vector)).decode() for vector in vectors]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
