"""The offline demo model: a LiteLLM custom provider that answers deterministically with
no network and no key, so that a newcomer can try every feature. Model strings start with
`promptlab-demo/`; everything that shows a model labels it "demo (offline)".
"""

import hashlib
import json
import time

import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

from promptlab.llm.models import DEMO_PROVIDER


def demo_answer(messages: list[dict], response_format: dict | None, max_tokens: int | None) -> tuple[str, str]:
    """(text, finish_reason) for the conversation; the same input always gives the same answer."""
    last = _text(messages[-1]["content"]) if messages else ""
    if response_format and response_format.get("type") in {"json_object", "json_schema"}:
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(_instance(schema, last)), "stop"
    digest = hashlib.sha256(last.encode()).hexdigest()[:8]
    words = f"(demo answer {digest}) You asked: {last}".split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return " ".join(words), "stop"


def _text(content) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _instance(schema: dict, text: str):
    """The smallest value that satisfies a simple JSON schema, so structured prompts demo well."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: _instance(properties[name], text) for name in properties}
    return {
        "string": f"demo: {text[:60]}",
        "integer": schema.get("minimum", 1),
        "number": schema.get("minimum", 1),
        "boolean": True,
        "array": [],
        "null": None,
    }.get(kind, f"demo: {text[:60]}")


class DemoLLM(CustomLLM):
    def completion(self, model, messages, api_base, custom_prompt_dict, model_response, print_verbose, encoding, api_key,
                   logging_obj, optional_params, *args, **kwargs) -> ModelResponse:  # fmt: skip
        text, finish_reason = demo_answer(
            messages, optional_params.get("response_format"), optional_params.get("max_tokens")
        )
        prompt_tokens = sum(len(_text(message.get("content")).split()) + 3 for message in messages)
        return ModelResponse(
            model=model,
            created=int(time.time()),
            choices=[Choices(index=0, finish_reason=finish_reason, message=Message(role="assistant", content=text))],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=len(text.split()),
                total_tokens=prompt_tokens + len(text.split()),
            ),
        )


def register() -> None:
    """Make `promptlab-demo/<anything>` callable through litellm.completion."""
    if not any(item["provider"] == DEMO_PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": DEMO_PROVIDER, "custom_handler": DemoLLM()})
        litellm.utils.custom_llm_setup()
