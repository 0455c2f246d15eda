"""The fake OpenAI-compatible server: its answers over plain HTTP, then through LiteLLM."""

import base64
import json
import math
import os
import socket
import struct
import threading
import time

import httpx
import pytest

from tests.fake_openai import FakeOpenAI, Scripted, embedding

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: never fetch the price map

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to Ada"}]


@pytest.fixture
def fake(llm_server):
    return llm_server


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=10) as http:
        yield http


def chat(client, fake, **body):
    return client.post(f"{fake.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO, **body})


def test_the_urls(fake):
    assert fake.url == f"http://127.0.0.1:{fake.port}" and fake.port > 0
    assert fake.base_url == fake.url + "/v1"


def test_the_default_chat_answer(client, fake):
    response = chat(client, fake)

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["id"].startswith("chatcmpl-fake-") and data["object"] == "chat.completion"
    assert data["model"] == "gpt-4o-mini" and isinstance(data["created"], int)
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "fake answer to: Say hello to Ada", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # 2 + 4 words, plus 3 per message; "fake answer to: Say hello to Ada" is 7 words
    assert data["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def test_answers_are_deterministic_but_ids_differ(client, fake):
    first, second = chat(client, fake).json(), chat(client, fake).json()

    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    assert first["created"] == second["created"] and first["id"] != second["id"]


def test_list_content_is_its_text_parts_joined(client, fake):
    messages = [{"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "second"}]}]

    data = chat(client, fake, messages=messages).json()

    assert data["choices"][0]["message"]["content"] == "fake answer to: first part second"
    assert data["usage"]["prompt_tokens"] == 3 + 3


def test_max_tokens_truncates_and_reports_length(client, fake):
    for limit_name in ("max_tokens", "max_completion_tokens"):
        choice = chat(client, fake, **{limit_name: 2}).json()["choices"][0]

        assert (choice["message"]["content"], choice["finish_reason"]) == ("fake answer", "length")
    assert chat(client, fake, max_tokens=7).json()["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("response_format", [{"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}])
def test_json_response_formats_answer_json(client, fake, response_format):
    data = chat(client, fake, response_format=response_format).json()

    content = data["choices"][0]["message"]["content"]
    assert json.loads(content) == {"answer": "Say hello to Ada"}
    assert data["usage"]["completion_tokens"] == len(content.split())


def test_streaming_is_refused(client, fake):
    response = chat(client, fake, stream=True)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "streaming is not supported by the fake server"


def test_embeddings(client, fake):
    response = client.post(f"{fake.base_url}/embeddings", json={"model": "text-embedding-3-small", "input": ["refund policy", "refund rules"]})

    data = response.json()
    assert data["object"] == "list" and data["model"] == "text-embedding-3-small"
    assert data["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert [item["index"] for item in data["data"]] == [0, 1] and {item["object"] for item in data["data"]} == {"embedding"}
    first, second = (item["embedding"] for item in data["data"])
    assert first != second and first == embedding("refund policy")
    for vector in (first, second):
        assert len(vector) == 8 and all(-1 <= value <= 1 for value in vector)
        assert math.isclose(sum(value * value for value in vector), 1.0)


def test_an_embedding_of_one_string_and_in_base64(client, fake):
    url = f"{fake.base_url}/embeddings"
    plain = client.post(url, json={"model": "e", "input": "refund policy"}).json()
    encoded = client.post(url, json={"model": "e", "input": "refund policy", "encoding_format": "base64"}).json()

    assert plain["data"][0]["embedding"] == embedding("refund policy") and plain["usage"]["prompt_tokens"] == 2
    decoded = struct.unpack("<8f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, embedding("refund policy")))


def test_unknown_paths_are_404(client, fake):
    for response in (client.get(f"{fake.base_url}/models"), client.post(f"{fake.url}/chat/completions", json={})):
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_requests_are_recorded_in_order(client, fake):
    chat(client, fake, temperature=0.3, max_tokens=50)
    client.post(f"{fake.base_url}/embeddings?x=1", content=b"not json", headers={"Authorization": "Bearer sk-1", "X-Custom": "yes"})

    first, second = fake.requests
    assert set(first) == {"path", "headers", "body"}
    assert first["path"] == "/v1/chat/completions"
    assert first["body"] == {"model": "gpt-4o-mini", "messages": HELLO, "temperature": 0.3, "max_tokens": 50}
    assert first["headers"]["content-type"] == "application/json"
    assert second["path"] == "/v1/embeddings" and second["body"] is None
    assert second["headers"]["authorization"] == "Bearer sk-1" and second["headers"]["x-custom"] == "yes"


def test_scripted_responses_are_used_once_each_in_order(client, fake):
    fake.script(
        Scripted.error(429, "Rate limit reached for requests", headers={"Retry-After": "1"}),
        Scripted.error(500, "The server had an error"),
        Scripted.content('{"score": 4}'),
    )

    limited, broken, scripted, default = (chat(client, fake) for _ in range(4))

    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json() == {"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error", "param": None, "code": None}}
    assert broken.status_code == 500 and broken.json()["error"]["type"] == "server_error"
    assert scripted.json()["choices"][0]["message"]["content"] == '{"score": 4}'
    assert scripted.json()["usage"]["completion_tokens"] == 2
    assert default.json()["choices"][0]["message"]["content"] == "fake answer to: Say hello to Ada"
    assert len(fake.requests) == 4


@pytest.mark.parametrize(
    "scripted, status, error",
    [
        (Scripted.error(401, "Incorrect API key provided", code="invalid_api_key"), 401, {"type": "authentication_error", "code": "invalid_api_key"}),
        (Scripted.error(400, "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.", code="context_length_exceeded"), 400, {"type": "invalid_request_error", "code": "context_length_exceeded"}),
        (Scripted.error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"), 400, {"type": "invalid_request_error", "code": "content_policy_violation"}),
        (Scripted.error(400, "The response was filtered", code="content_filter"), 400, {"type": "invalid_request_error", "code": "content_filter"}),
        (Scripted.error(418, "teapot", type="odd_error"), 418, {"type": "odd_error", "code": None}),
    ],
)  # fmt: skip
def test_scripted_errors(client, fake, scripted, status, error):
    fake.script(scripted)

    response = chat(client, fake)

    assert response.status_code == status
    assert response.json() == {"error": {"message": scripted.message, "param": None, **error}}


def test_a_scripted_content_keeps_its_finish_reason(client, fake):
    fake.script(Scripted.content("cut sh", finish_reason="length"))

    choice = chat(client, fake).json()["choices"][0]

    assert (choice["message"]["content"], choice["finish_reason"]) == ("cut sh", "length")


def test_garbage(client, fake):
    fake.script(Scripted.garbage(), Scripted.garbage(b"<html>502 Bad Gateway</html>", status=502))

    first, second = chat(client, fake), chat(client, fake)

    assert (first.status_code, first.headers["content-type"], first.content) == (200, "text/html", b"<html>502 Bad Gateway from proxy</html>")
    assert (second.status_code, second.content) == (502, b"<html>502 Bad Gateway</html>")


def test_a_scripted_redirect(client, fake):
    fake.script(Scripted.redirect("http://127.0.0.1:9/v1/chat/completions", body=b'{"secret": 1}'))

    answer = chat(client, fake)  # httpx follows no redirect unless asked

    assert (answer.status_code, answer.headers["location"], answer.content) == (307, "http://127.0.0.1:9/v1/chat/completions", b'{"secret": 1}')


def test_delay_and_latency(client, fake):
    fake.script(Scripted.delay(0.3))
    started = time.monotonic()
    assert chat(client, fake).json()["choices"][0]["message"]["content"] == "fake answer to: Say hello to Ada"
    assert time.monotonic() - started >= 0.3

    fake.latency = 0.2
    started = time.monotonic()
    chat(client, fake)
    assert time.monotonic() - started >= 0.2


def test_a_client_that_times_out_does_not_break_the_server(client, fake):
    fake.script(Scripted.delay(0.5))

    with pytest.raises(httpx.ReadTimeout):
        chat(httpx.Client(timeout=0.1), fake)
    assert chat(client, fake).status_code == 200
    time.sleep(0.5)  # the delayed answer is written to a closed socket, quietly
    assert chat(client, fake).status_code == 200


def test_requests_are_served_concurrently(fake, monkeypatch):
    # Each request is answered only once all five have arrived: served one at a time, the
    # first would wait for the others in vain and its connection would close unanswered.
    all_arrived = threading.Barrier(5, timeout=30)
    record = fake._record

    def record_then_wait(request):
        answer = record(request)
        all_arrived.wait()
        return answer

    monkeypatch.setattr(fake, "_record", record_then_wait)
    statuses = []

    def call():
        with httpx.Client(timeout=60) as own:
            statuses.append(chat(own, fake).status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 5 and len(fake.requests) == 5


def test_reset_forgets_everything(client, fake):
    fake.script(Scripted.error(500))
    chat(client, fake, max_tokens=1)
    fake.script(Scripted.error(500))
    fake.latency = 5

    fake.reset()

    assert fake.requests == [] and fake.latency == 0
    assert chat(client, fake).status_code == 200


def test_keep_alive_connections_are_reused(client, fake):
    responses = [chat(client, fake) for _ in range(3)]

    assert all(response.headers["connection"] == "keep-alive" for response in responses)
    with socket.create_connection(("127.0.0.1", fake.port)) as raw:
        request = b"POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        raw.sendall(request + request)
        time.sleep(0.1)
        answer = raw.recv(65536)
    assert answer.count(b"HTTP/1.1 404 Not Found") == 2


def test_stop_refuses_new_and_kept_alive_connections():
    fake = FakeOpenAI().start()
    with httpx.Client(timeout=2) as own:
        assert chat(own, fake).status_code == 200

        fake.stop()

        with pytest.raises(httpx.TransportError):
            chat(own, fake)
    fake.stop()  # twice is fine


def test_the_context_manager():
    with FakeOpenAI() as fake:
        assert httpx.post(f"{fake.base_url}/embeddings", json={"model": "e", "input": "a b"}).json()["usage"]["prompt_tokens"] == 2


# -- through LiteLLM: real HTTP calls from litellm to the fake --


@pytest.fixture(scope="module")
def litellm():
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    import litellm

    litellm.telemetry = False
    return litellm


def complete(litellm, fake, **kwargs):
    kwargs.setdefault("messages", HELLO)
    return litellm.completion(
        model="openai/gpt-4o-mini", api_base=fake.base_url, api_key="sk-fake", num_retries=0, max_retries=0, **kwargs
    )


def test_litellm_parses_the_default_answer_and_usage(litellm, fake):
    response = complete(litellm, fake, temperature=0.3, max_tokens=50)

    assert response.choices[0].message.content == "fake answer to: Say hello to Ada"
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (12, 7, 19)
    assert litellm.completion_cost(completion_response=response) > 0
    [request] = fake.requests
    assert request["path"] == "/v1/chat/completions" and request["headers"]["authorization"] == "Bearer sk-fake"
    assert request["body"]["model"] == "gpt-4o-mini" and request["body"]["messages"] == HELLO
    assert request["body"]["temperature"] == 0.3 and request["body"]["max_tokens"] == 50


def test_litellm_gets_scripted_content_and_length(litellm, fake):
    fake.script(Scripted.content('{"score": 4, "reasoning": "short"}'))

    assert json.loads(complete(litellm, fake, response_format={"type": "json_object"}).choices[0].message.content)["score"] == 4
    assert complete(litellm, fake, max_tokens=2).choices[0].finish_reason == "length"


def test_litellm_embeddings(litellm, fake):
    response = litellm.embedding(model="openai/text-embedding-3-small", input=["refund policy", "refund rules"], api_base=fake.base_url, api_key="sk-fake")

    vectors = [item["embedding"] for item in response.data]
    assert len(vectors) == 2 and all(len(vector) == 8 for vector in vectors)
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(vectors[0], embedding("refund policy")))
    assert response.usage.prompt_tokens == 4


@pytest.mark.parametrize(
    "scripted, exception, status",
    [
        (Scripted.error(429, "Rate limit reached", headers={"Retry-After": "7"}), "RateLimitError", 429),
        (Scripted.error(500, "The server had an error"), "InternalServerError", 500),
        (Scripted.error(401, "Incorrect API key provided"), "AuthenticationError", 401),
        (Scripted.error(400, "This model's maximum context length is 8192 tokens. However, ...", code="context_length_exceeded"), "ContextWindowExceededError", 400),
        (Scripted.error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"), "ContentPolicyViolationError", 400),
        (Scripted.garbage(b"<html>502 Bad Gateway</html>", status=502), "BadGatewayError", 502),
        (Scripted.garbage(b"<html>upstream says no</html>", status=200), "InternalServerError", 500),
    ],
    ids=["429", "500", "401", "context", "policy", "502", "garbage"],
)  # fmt: skip
def test_litellm_maps_scripted_failures(litellm, fake, scripted, exception, status):
    fake.script(scripted)

    with pytest.raises(getattr(litellm, exception)) as error:
        complete(litellm, fake)

    assert error.value.status_code == status and len(fake.requests) == 1
    expected = scripted.message if scripted.kind == "error" else scripted.body.decode()
    assert expected in str(error.value)
    if status == 429:  # the provider's headers survive on litellm_response_headers, not on .response
        assert error.value.litellm_response_headers["retry-after"] == "7"


def test_litellm_times_out_against_a_delay(litellm, fake):
    fake.script(Scripted.delay(2))  # answered after 2 s, had the call waited

    with pytest.raises(litellm.Timeout):
        complete(litellm, fake, timeout=0.5)
    assert len(fake.requests) == 1
