"""promptfoo providers read as what promptlab's model catalog needs: a LiteLLM model string, an
api_base, the name of the environment variable that holds the key, and call parameters.

Supported ids: ``openai:chat:<model>`` and ``openai:<model>`` (chat models) and, as the
embedding model of a ``similar`` assertion, ``openai:embedding:<model>``. Anything else is
refused with the file and key that named it."""

import re
from dataclasses import dataclass, field

from promptlab.errors import Invalid
from promptlab.llm.params import validate_params

CHAT, EMBEDDING = "chat", "embedding"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # promptfoo's default for OpenAI
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-large"  # promptfoo's default for `similar`
PARAMS = {"temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop", "response_format"}
# promptfoo provider kinds after "openai:" that promptlab does not call.
OTHER_OPENAI_KINDS = {"completion", "responses", "assistant", "image", "realtime", "transcription", "moderation", "agents", "chatkit"}
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
SUPPORTED = "openai:chat:<model>, openai:<model> and, for similar, openai:embedding:<model>"


@dataclass
class ProviderSpec:
    id: str  # as the config wrote it, e.g. openai:chat:gpt-4o-mini
    use: str  # chat | embedding
    model: str  # LiteLLM's model string, e.g. openai/gpt-4o-mini
    where: str  # "promptfooconfig.yaml: providers[0]"
    label: str = ""
    api_base: str = ""
    api_key_env: str = DEFAULT_KEY_ENV
    params: dict = field(default_factory=dict)
    prompts: list[str] | None = None  # promptfoo's per-provider prompt filter
    ignored: list[str] = field(default_factory=list)  # config keys without an effect here

    @property
    def name(self) -> str:
        """How the suite calls it: its label, else its id."""
        return self.label or self.id

    def catalog_key(self) -> tuple[str, str, str]:
        """What makes two providers the same model endpoint."""
        return (self.model, self.api_base, self.api_key_env)


def parse_provider(raw, *, where: str, use: str | None = CHAT) -> ProviderSpec:
    """A provider entry (an id, {id, label, config, prompts}, or {<id>: {config...}}) as a spec
    for `use` (None: whatever model it names), or Invalid naming the key."""
    if isinstance(raw, dict) and "id" not in raw and len(raw) == 1:
        [(provider_id, options)] = raw.items()
        raw = {"id": provider_id, **(options if isinstance(options, dict) else {})}
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise Invalid(f"{where}: a provider is an id such as openai:chat:gpt-4o-mini, or an object with an id.", details={"key": where})
    provider_id, config = raw["id"].strip(), raw.get("config") or {}
    if not isinstance(config, dict):
        raise Invalid(f"{where}.config: must be a mapping.", details={"key": f"{where}.config"})
    found_use, model = _model(provider_id, where)
    if use is not None and found_use != use:
        wanted = "a chat model (openai:chat:<model>)" if use == CHAT else "an embedding model (openai:embedding:<model>)"
        raise Invalid(f"{where}: {provider_id!r} is not {wanted}.", details={"key": where})
    spec = ProviderSpec(id=provider_id, use=found_use, model=f"openai/{model}", where=where, label=str(raw.get("label") or ""))
    prompts = raw.get("prompts")
    if prompts is not None:
        spec.prompts = [prompts] if isinstance(prompts, str) else [str(item) for item in prompts] if isinstance(prompts, list) else None
        if spec.prompts is None:
            raise Invalid(f"{where}.prompts: must be a list of prompt labels.", details={"key": f"{where}.prompts"})
    spec.ignored = sorted(key for key in raw if key not in ("id", "label", "config", "prompts"))
    _apply_config(spec, config, f"{where}.config")
    return spec


def _model(provider_id: str, where: str) -> tuple[str, str]:
    parts = provider_id.split(":")
    unknown = Invalid(f"{where}: unknown provider {provider_id!r}; promptlab imports {SUPPORTED}.", details={"key": where, "provider": provider_id})  # fmt: skip
    if parts[0] != "openai" or len(parts) < 2:
        raise unknown
    kind, rest = parts[1], ":".join(parts[2:])
    if kind == "chat" and rest:
        return CHAT, rest
    if kind in ("embedding", "embeddings") and rest:
        return EMBEDDING, rest
    if kind in ("chat", "embedding", "embeddings") or kind in OTHER_OPENAI_KINDS or not kind:
        raise unknown
    return CHAT, ":".join(parts[1:])  # openai:<model>, fine-tuned ids (ft:...) included


def _apply_config(spec: ProviderSpec, config: dict, where: str) -> None:
    if "apiKey" in config:
        raise Invalid(
            f"{where}.apiKey: promptlab never stores API keys; put the key in an environment variable of the web and "
            "worker processes and name that variable with apiKeyEnvar.",
            details={"key": f"{where}.apiKey"},
        )
    base = config.get("apiBaseUrl") or (f"https://{config['apiHost']}/v1" if config.get("apiHost") else "")
    if not isinstance(base, str):
        raise Invalid(f"{where}.apiBaseUrl: must be a URL.", details={"key": f"{where}.apiBaseUrl"})
    spec.api_base = base.rstrip("/")
    key_env = config.get("apiKeyEnvar", DEFAULT_KEY_ENV)
    if not isinstance(key_env, str) or not _ENV_NAME.match(key_env):
        raise Invalid(f"{where}.apiKeyEnvar: {key_env!r} is not the name of an environment variable.", details={"key": f"{where}.apiKeyEnvar"})  # fmt: skip
    spec.api_key_env = key_env
    spec.params = {key: value for key, value in config.items() if key in PARAMS}
    try:
        validate_params(spec.params)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.message}", details={"key": where, **exc.details}) from None
    spec.ignored += sorted(f"config.{key}" for key in config if key not in PARAMS | {"apiBaseUrl", "apiHost", "apiKeyEnvar"})


def grader(option, *, use: str, where: str) -> ProviderSpec | None:
    """The model an assertion's `provider` (or a test's options.provider) names for `use`: an id,
    an object with an id, or promptfoo's {text: ..., embedding: ...} form. None when unset or when
    it names a model of the other use (promptfoo then falls back to its default model too)."""
    if isinstance(option, dict) and not ("id" in option or len(option) == 1 and ":" in next(iter(option))):
        option = option.get("embedding" if use == EMBEDDING else "text")
    if option is None:
        return None
    spec = parse_provider(option, where=where, use=None)
    return spec if spec.use == use else None


def default_embedding(chat: ProviderSpec) -> ProviderSpec:
    """promptfoo's default embedding model, reached like the suite's first provider."""
    return ProviderSpec(
        id=f"openai:embedding:{DEFAULT_EMBEDDING_MODEL}", use=EMBEDDING, model=f"openai/{DEFAULT_EMBEDDING_MODEL}",
        where=f"{chat.where} (default embedding model)", api_base=chat.api_base, api_key_env=chat.api_key_env,
    )  # fmt: skip
