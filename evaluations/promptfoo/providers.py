"""promptfoo providers read as what promptlab's model catalog needs: a LiteLLM model string, an
api_base, the name of the environment variable that holds the key, and call parameters.

Every provider LiteLLM serves is read as promptfoo names it (FAMILIES: `openai:`, `anthropic:`,
`azure:`, `bedrock:`, `vertex:`, `ollama:`, ...), and so are OpenAI-compatible HTTP targets
(`id: https://.../chat/completions`). A base URL or key variable the config leaves out is found
where promptfoo finds it: the provider's environment variables, as set for the import. A key
written into the config is refused (the catalog keeps only the NAME of a variable), and so is
anything else promptlab cannot call; what the catalog cannot keep (a region, an API version) is
reported with the worker variable LiteLLM reads instead.
"""

import os
import re
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import urlsplit

from promptlab.errors import Invalid
from promptlab.llm.catalog import key_env_for
from promptlab.llm.params import validate_params

CHAT, EMBEDDING = "chat", "embedding"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # promptfoo's default for OpenAI
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-large"  # promptfoo's default for `similar`
PARAMS = {"temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop", "response_format"}
# Provider kinds (the word after "<family>:") that are not chat or embedding models.
OTHER_KINDS = {"assistant", "assistants", "realtime", "image", "video", "voice", "live", "transcription", "moderation", "agents",
               "agent", "agentcore", "foundry-agent", "chatkit", "kb", "tts", "speech", "audio"}  # fmt: skip
# Config keys that carry a credential, and the variable LiteLLM reads it from in the workers instead.
CREDENTIALS = {"accessKeyId": "AWS_ACCESS_KEY_ID", "secretAccessKey": "AWS_SECRET_ACCESS_KEY", "sessionToken": "AWS_SESSION_TOKEN",
               "azureClientSecret": "AZURE_CLIENT_SECRET", "credentials": "GOOGLE_APPLICATION_CREDENTIALS"}  # fmt: skip
# Config keys read for every provider, besides its family's settings and the parameters.
READ_KEYS = {"apiKey", "apiKeyEnvar", *CREDENTIALS}
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# A value that names an environment variable instead of holding a secret: {{ env.NAME }} or ${NAME}.
_ENV_REFERENCE = re.compile(r"^\s*(?:\{\{\s*env\.([A-Za-z_]\w*)\s*\}\}|\$\{([A-Za-z_]\w*)\})\s*$")
_PROMPT = re.compile(r"^\s*\{\{\s*prompt\s*\}\}\s*$")
_CHOICES_CONTENT = re.compile(r"^\s*json\??\.choices\??\.?\[0\]\??\.message\??\.content\s*$")
CHAT_COMPLETIONS = "/chat/completions"


@dataclass(frozen=True)
class Family:
    """How promptfoo names one provider's models and how LiteLLM reaches them."""

    litellm: str  # LiteLLM's prefix for `<family>:<model>`, e.g. "anthropic"
    key_env: tuple[str, ...] = ()  # promptfoo's key variables: the first set for the import, else the first; () signs in otherwise
    kinds: dict = field(default_factory=dict)  # `<family>:<kind>:<model>` -> (use, LiteLLM prefix)
    bare: bool = True  # `<family>:<model>` names a chat model
    reads_base: bool = True  # apiBaseUrl (and apiHost) may point it elsewhere
    host_path: str | None = "/v1"  # apiHost <host> means https://<host><host_path>; None: no apiHost
    base_env: tuple[str, ...] = ()  # promptfoo's base-URL variables, in its order
    host_env: tuple[str, ...] = ()  # promptfoo's host variables, read after base_env
    default_base: str = ""
    needs_base: bool = False
    settings: dict = field(default_factory=dict)  # config key the catalog cannot keep -> the worker variable LiteLLM reads
    model_prefixes: dict = field(default_factory=dict)  # model name start -> what LiteLLM wants before it

    def key_variable(self) -> str:
        """The key's variable when the config names none: the first of promptfoo's that is set, else its first."""
        return next((name for name in self.key_env if os.environ.get(name)), self.key_env[0] if self.key_env else "")

    def read_keys(self) -> set[str]:
        """The config keys that have an effect here."""
        base = {"apiBaseUrl", *(["apiHost"] if self.host_path is not None else [])} if self.reads_base else set()
        return READ_KEYS | PARAMS | base | set(self.settings)


def _embedding(prefix: str) -> dict:
    return {"embedding": (EMBEDDING, prefix), "embeddings": (EMBEDDING, prefix)}


_AZURE = Family(
    "azure", ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), bare=False, host_path="", needs_base=True,
    kinds={"chat": (CHAT, "azure"), "completion": (CHAT, "azure_text"), "responses": (CHAT, "azure/responses"), **_embedding("azure")},
    base_env=("AZURE_API_BASE_URL", "AZURE_OPENAI_API_BASE_URL", "AZURE_OPENAI_BASE_URL", "AZURE_BASE_URL"),
    host_env=("AZURE_API_HOST", "AZURE_OPENAI_API_HOST"), settings={"apiVersion": "AZURE_API_VERSION"},
)  # fmt: skip
FAMILIES = {
    "openai": Family(
        "openai", ("OPENAI_API_KEY",), base_env=("OPENAI_API_BASE_URL", "OPENAI_BASE_URL"), host_env=("OPENAI_API_HOST",),
        kinds={"chat": (CHAT, "openai"), "completion": (CHAT, "text-completion-openai"), "responses": (CHAT, "openai/responses"),
               **_embedding("openai")},
    ),
    "anthropic": Family("anthropic", ("ANTHROPIC_API_KEY",), kinds={"messages": (CHAT, "anthropic"), "completion": (CHAT, "anthropic_text")},
                        host_path=None, base_env=("ANTHROPIC_BASE_URL",)),
    "azure": _AZURE,
    "azureopenai": _AZURE,
    "bedrock": Family("bedrock", kinds={"converse": (CHAT, "bedrock/converse"), **_embedding("bedrock")}, reads_base=False,
                      settings={"region": "AWS_REGION_NAME", "profile": "AWS_PROFILE"}),
    "vertex": Family("vertex_ai", kinds=_embedding("vertex_ai"), reads_base=False, model_prefixes={"llama": "meta/"},
                     settings={"projectId": "VERTEXAI_PROJECT", "region": "VERTEXAI_LOCATION", "keyFilename": "GOOGLE_APPLICATION_CREDENTIALS",
                               "credentials": "GOOGLE_APPLICATION_CREDENTIALS"}),
    "google": Family("gemini", ("GOOGLE_API_KEY", "GEMINI_API_KEY"), kinds=_embedding("gemini"), host_path=None),
    "ollama": Family("ollama", kinds={"chat": (CHAT, "ollama_chat"), "completion": (CHAT, "ollama"), **_embedding("ollama")},
                     host_path=None, base_env=("OLLAMA_BASE_URL",), default_base="http://localhost:11434"),
    "mistral": Family("mistral", ("MISTRAL_API_KEY",), kinds={"chat": (CHAT, "mistral"), **_embedding("mistral")},
                      base_env=("MISTRAL_API_BASE_URL",), host_env=("MISTRAL_API_HOST",)),
    "groq": Family("groq", ("GROQ_API_KEY",)),
    "openrouter": Family("openrouter", ("OPENROUTER_API_KEY",)),
    "deepseek": Family("deepseek", ("DEEPSEEK_API_KEY",)),
    "xai": Family("xai", ("XAI_API_KEY",)),
    "togetherai": Family("together_ai", ("TOGETHER_API_KEY",)),
    "fireworks": Family("fireworks_ai", ("FIREWORKS_API_KEY",)),
    "perplexity": Family("perplexity", ("PERPLEXITY_API_KEY",)),
    "cerebras": Family("cerebras", ("CEREBRAS_API_KEY",)),
}  # fmt: skip
SUPPORTED = ", ".join(f"{name}:" for name in FAMILIES) + " and OpenAI-compatible http(s) targets"


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
    notes: list[str] = field(default_factory=list)  # what the catalog cannot keep, and where the workers read it instead

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
    family_name = provider_id.split(":", 1)[0]
    _refuse_written_credentials(raw, where, FAMILIES.get(family_name))
    if family_name in ("http", "https"):
        spec = _http_target(provider_id, config, where)
    else:
        spec = _family_provider(provider_id, config, where)
    if use is not None and spec.use != use:
        wanted = "a chat model" if use == CHAT else "an embedding model (such as openai:embedding:<model>)"
        raise Invalid(f"{where}: {provider_id!r} is not {wanted}.", details={"key": where})
    spec.label = str(raw.get("label") or "")
    prompts = raw.get("prompts")
    if prompts is not None:
        spec.prompts = [prompts] if isinstance(prompts, str) else [str(item) for item in prompts] if isinstance(prompts, list) else None
        if spec.prompts is None:
            raise Invalid(f"{where}.prompts: must be a list of prompt labels.", details={"key": f"{where}.prompts"})
    spec.ignored = sorted(key for key in raw if key not in ("id", "label", "config", "prompts")) + spec.ignored
    try:
        validate_params(spec.params)
    except Invalid as exc:
        raise Invalid(f"{where}.config: {exc.message}", details={"key": f"{where}.config", **exc.details}) from None
    return spec


def _family_provider(provider_id: str, config: dict, where: str) -> ProviderSpec:
    """`<family>:<model>` or `<family>:<kind>:<model>` (model names may hold colons)."""
    family_name, _, rest = provider_id.partition(":")
    family = FAMILIES.get(family_name)
    if family is None or not rest:
        raise Invalid(f"{where}: unknown provider {provider_id!r}; promptlab imports {SUPPORTED}.", details={"key": where, "provider": provider_id})  # fmt: skip
    kind, _, model = rest.partition(":")
    if kind in OTHER_KINDS:
        raise Invalid(f"{where}: {provider_id!r} is a promptfoo {kind} provider; promptlab imports chat and embedding models.", details={"key": where, "provider": provider_id})  # fmt: skip
    if kind in family.kinds and model:
        use, prefix = family.kinds[kind]
    elif family.bare and kind not in family.kinds:
        use, prefix, model = CHAT, family.litellm, rest
    else:
        forms = [f"{family_name}:{name}:<model>" for name in family.kinds if name != "embeddings"] + ([f"{family_name}:<model>"] if family.bare else [])
        raise Invalid(f"{where}: promptfoo has no provider {provider_id!r}; write {', '.join(forms)}.", details={"key": where, "provider": provider_id})  # fmt: skip
    model = next((before + model for start, before in family.model_prefixes.items() if model.startswith(start)), model)
    spec = ProviderSpec(id=provider_id, use=use, model=f"{prefix}/{model}", where=where)
    config_where = f"{where}.config"
    spec.api_base = _base(family, config, config_where, provider_id)
    spec.api_key_env = _key_variable(config, config_where, family.key_variable())
    spec.params = {key: value for key, value in config.items() if key in PARAMS}
    for key, variable in family.settings.items():
        if config.get(key) not in (None, "") and _env_reference(config[key]) != variable:
            spec.notes.append(f"{config_where}.{key}: the model catalog keeps no {key}; the workers call {provider_id} with the "
                              f"{key} in their environment variable {variable} (set it to {str(config[key]).removeprefix('file://')}).")  # fmt: skip
    spec.ignored = sorted(f"config.{key}" for key in config if key not in family.read_keys())
    return spec


def _base(family: Family, config: dict, where: str, provider_id: str) -> str:
    """The api_base: config.apiBaseUrl, config.apiHost, then promptfoo's variables, then the default."""
    if not family.reads_base:
        return ""
    base = config.get("apiBaseUrl") or ""
    if not isinstance(base, str):
        raise Invalid(f"{where}.apiBaseUrl: must be a URL.", details={"key": f"{where}.apiBaseUrl"})
    if named := _env_reference(base):
        base = os.environ.get(named) or ""
        if not base:
            raise Invalid(f"{where}.apiBaseUrl: it names the environment variable {named}, which is not set for the import.", details={"key": f"{where}.apiBaseUrl"})  # fmt: skip
    host = config.get("apiHost") if family.host_path is not None else None
    if not base and host:
        base = f"https://{host}{family.host_path}"
    base = base or next((os.environ[name] for name in family.base_env if os.environ.get(name)), "")
    if not base and family.host_path is not None:
        base = next((f"https://{os.environ[name]}{family.host_path}" for name in family.host_env if os.environ.get(name)), "")
    base = (base or family.default_base).rstrip("/")
    if not base and family.needs_base:
        variables = ", ".join(family.base_env + family.host_env)
        raise Invalid(f"{where}: {provider_id} needs the resource's address: set apiHost (such as my-resource.openai.azure.com) "
                      f"or apiBaseUrl, or one of {variables} for the import.", details={"key": f"{where}.apiHost"})  # fmt: skip
    return base


def _key_variable(config: dict, where: str, default: str) -> str:
    """The key's variable: apiKey's {{ env.NAME }}, else apiKeyEnvar, else promptfoo's default;
    renamed to the catalog's prefix rule (OPENAI_API_KEY is read from PROMPTLAB_KEY_OPENAI_API_KEY)."""
    key_env = _env_reference(config.get("apiKey")) or config.get("apiKeyEnvar", default)
    if not isinstance(key_env, str) or (key_env and not _ENV_NAME.match(key_env)):
        raise Invalid(f"{where}.apiKeyEnvar: {key_env!r} is not the name of an environment variable (capitals, digits and _).", details={"key": f"{where}.apiKeyEnvar"})  # fmt: skip
    return key_env_for(key_env)


def _env_reference(value) -> str | None:
    """NAME when the value is {{ env.NAME }} or ${NAME}: promptfoo reads the variable then."""
    match = _ENV_REFERENCE.match(value) if isinstance(value, str) else None
    return (match.group(1) or match.group(2)) if match else None


def _refuse_written_credentials(raw: dict, where: str, family: Family | None) -> None:
    """Refuse a key (or another credential) written into the entry or its config: promptlab would
    have to store it, and the catalog keeps only the name of the variable that holds it."""
    config = raw.get("config") or {}
    for place, values in ((where, raw), (f"{where}.config", config)):
        value = values.get("apiKey")
        if value is not None and _env_reference(value) is None:
            example = family.key_env[0] if family and family.key_env else "MY_KEY_VAR"
            raise Invalid(
                f"{place}.apiKey: promptlab never stores API keys, and a key written into the config would have to be "
                f"stored; put it in an environment variable of the web and worker processes and name it with "
                f"apiKeyEnvar: {example}.",
                details={"key": f"{place}.apiKey"},
            )
    for key, variable in CREDENTIALS.items():
        value = config.get(key)
        named = _env_reference(value)
        if value is None or named == variable or (key == "credentials" and str(value).startswith("file://")):
            continue
        problem = f"it names {named}, but" if named else "a credential written into the config would be stored in promptlab;"
        raise Invalid(
            f"{where}.config.{key}: {problem} LiteLLM reads it from the environment variable {variable} of the web and worker "
            f"processes: set it there and remove {key} from the config.",
            details={"key": f"{where}.config.{key}"},
        )


def _http_target(provider_id: str, config: dict, where: str) -> ProviderSpec:
    """An http(s) target that speaks OpenAI's chat completions, as `openai/<model>` at its base URL:
    `id: https://host/v1/chat/completions` (or `id: https` with config.url), a JSON body with a
    fixed `model` and the prompt as `messages`, and the answer read at choices[0].message.content."""
    config_where = f"{where}.config"
    url = provider_id if "://" in provider_id else config.get("url")

    def refuse(key: str, problem: str) -> NoReturn:
        raise Invalid(f"{config_where}.{key}: {problem}; promptlab imports http(s) targets that speak OpenAI's chat completions.",
                      details={"key": f"{config_where}.{key}"})  # fmt: skip

    for key in ("request", "transformRequest", "queryParams"):
        if config.get(key):
            refuse(key, "it builds the request itself")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or "{{" in url:
        refuse("url", f"{url!r} is not a fixed http(s) URL")
    if not urlsplit(url).path.rstrip("/").endswith(CHAT_COMPLETIONS) or urlsplit(url).query:
        refuse("url", f"{url} is not a .../chat/completions URL without a query")
    if str(config.get("method", "POST")).upper() != "POST":
        refuse("method", "it must be POST")
    body = config.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or "{{" in body["model"]:
        refuse("body", "its model must be a fixed name")
    if not _prompt_messages(body.get("messages")):
        refuse("body.messages", "it must be '{{prompt}}' (a chat prompt) or [{role: user, content: '{{prompt}}'}]")
    templated = sorted(key for key, value in body.items() if key != "messages" and "{{" in str(value))
    if templated:
        refuse(f"body.{templated[0]}", "it changes with the test")
    if not _CHOICES_CONTENT.match(str(config.get("transformResponse", ""))):
        refuse("transformResponse", "promptlab grades choices[0].message.content, so it must be json.choices[0].message.content "
                                    "(without it promptfoo grades the whole JSON answer)")  # fmt: skip
    headers = config.get("headers") or {}
    if not isinstance(headers, dict):
        refuse("headers", "it must be a mapping of header names to values")
    authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
    key_env = _key_variable(config, config_where, "")
    if authorization is not None:
        scheme, _, token = str(authorization).partition(" ")
        key_env = _env_reference(token) if scheme.lower() == "bearer" else None
        if key_env is None:
            raise Invalid(
                f"{config_where}.headers.Authorization: promptlab never stores API keys, and a key written into the config would "
                "have to be stored; put it in an environment variable of the web and worker processes and write "
                "Authorization: 'Bearer {{env.MY_KEY_VAR}}' (or name it with apiKeyEnvar: MY_KEY_VAR).",
                details={"key": f"{config_where}.headers.Authorization"},
            )
    spec = ProviderSpec(id=provider_id, use=CHAT, model=f"openai/{body['model']}", where=where, api_key_env=key_env,
                        api_base=url.rstrip("/")[: -len(CHAT_COMPLETIONS)])  # fmt: skip
    spec.params = {key: value for key, value in body.items() if key in PARAMS}
    spec.ignored = sorted(
        [f"config.{key}" for key in config if key not in {"url", "method", "body", "headers", "transformResponse", *READ_KEYS}]
        + [f"config.body.{key}" for key in body if key not in PARAMS | {"model", "messages"}]
        + [f"config.headers.{name}" for name in headers if name.lower() not in ("authorization", "content-type")]
    )
    return spec


def _prompt_messages(messages) -> bool:
    """Whether the body sends the prompt as promptlab does: a chat prompt whole, a text prompt as one user message."""
    if isinstance(messages, str):
        return bool(_PROMPT.match(messages))
    return (isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], dict)
            and messages[0].get("role") == "user" and _PROMPT.match(str(messages[0].get("content", ""))) is not None)  # fmt: skip


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
    """promptfoo's default embedding model (OpenAI's), reached like the suite's first provider when
    that one speaks OpenAI's API (a proxy, a compatible server), else at OpenAI with OPENAI_API_KEY."""
    openai_like = chat.model.split("/", 1)[0] in ("openai", "text-completion-openai")
    return ProviderSpec(
        id=f"openai:embedding:{DEFAULT_EMBEDDING_MODEL}", use=EMBEDDING, model=f"openai/{DEFAULT_EMBEDDING_MODEL}",
        where=f"{chat.where} (default embedding model)", api_base=chat.api_base if openai_like else "",
        api_key_env=chat.api_key_env if openai_like else key_env_for(DEFAULT_KEY_ENV),
    )  # fmt: skip
