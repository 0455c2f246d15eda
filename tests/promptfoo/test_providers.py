"""promptfoo providers as model-catalog endpoints: every provider id promptfoo writes for a model
LiteLLM serves becomes the LiteLLM model string, api_base and key variable that reach it; a key
written into the config is refused with the path and the apiKeyEnvar form to use, and nothing
is imported. No test calls a real provider: imports make no call, and the one suite that runs
calls the fake OpenAI-compatible server on 127.0.0.1."""

import re
import textwrap

import pytest

from evaluations.models import Evaluator
from evaluations.promptfoo.config import read_suite
from evaluations.promptfoo.files import ConfigOnly, FolderFiles
from evaluations.promptfoo.importer import promptfoo_suite_import
from evaluations.promptfoo.providers import CHAT, EMBEDDING, FAMILIES, default_embedding, parse_provider
from experiments.models import Dataset, Experiment, RunStatus
from promptlab.errors import Invalid
from promptlab.llm import gateway
from promptlab.llm.models import ModelEndpoint
from prompts.models import Prompt
from tests.factories import ProjectFactory
from tests.promptfoo.configs import KEY_ENV, run_and_score

WHERE = "promptfooconfig.yaml: providers[0]"


@pytest.fixture(autouse=True)
def no_provider_variables(monkeypatch):
    """The variables promptfoo reads for keys and base URLs, unset: each test sets its own."""
    for family in FAMILIES.values():
        for name in (*family.key_env, *family.base_env, *family.host_env):
            monkeypatch.delenv(name, raising=False)


def spec(raw, **kwargs):
    return parse_provider(raw, where=WHERE, use=None, **kwargs)


# --- Each prefix's mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "use", "model", "api_base", "key_env"),
    [
        ("openai:gpt-4o-mini", CHAT, "openai/gpt-4o-mini", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:chat:gpt-4o-mini", CHAT, "openai/gpt-4o-mini", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:ft:gpt-4o-mini:acme::abc", CHAT, "openai/ft:gpt-4o-mini:acme::abc", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:completion:gpt-3.5-turbo-instruct", CHAT, "text-completion-openai/gpt-3.5-turbo-instruct", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:responses:gpt-4.1", CHAT, "openai/responses/gpt-4.1", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:embedding:text-embedding-3-small", EMBEDDING, "openai/text-embedding-3-small", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("openai:embeddings:text-embedding-3-small", EMBEDDING, "openai/text-embedding-3-small", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ({"id": "openai:chat:llama3", "config": {"apiBaseUrl": "http://127.0.0.1:8000/v1/", "apiKeyEnvar": "VLLM_KEY"}},
         CHAT, "openai/llama3", "http://127.0.0.1:8000/v1", "PROMPTLAB_KEY_VLLM_KEY"),
        ({"id": "openai:gpt-4o", "config": {"apiHost": "proxy.internal"}}, CHAT, "openai/gpt-4o", "https://proxy.internal/v1", "PROMPTLAB_KEY_OPENAI_API_KEY"),
        ("anthropic:messages:claude-3-5-haiku-20241022", CHAT, "anthropic/claude-3-5-haiku-20241022", "", "PROMPTLAB_KEY_ANTHROPIC_API_KEY"),
        ("anthropic:claude-3-5-haiku-latest", CHAT, "anthropic/claude-3-5-haiku-latest", "", "PROMPTLAB_KEY_ANTHROPIC_API_KEY"),
        ("anthropic:completion:claude-2.1", CHAT, "anthropic_text/claude-2.1", "", "PROMPTLAB_KEY_ANTHROPIC_API_KEY"),
        ({"id": "anthropic:messages:claude-sonnet-4-5", "config": {"apiBaseUrl": "https://claude.proxy.internal"}},
         CHAT, "anthropic/claude-sonnet-4-5", "https://claude.proxy.internal", "PROMPTLAB_KEY_ANTHROPIC_API_KEY"),
        ({"id": "azure:chat:gpt4o-prod", "config": {"apiHost": "acme.openai.azure.com"}}, CHAT, "azure/gpt4o-prod", "https://acme.openai.azure.com", "PROMPTLAB_KEY_AZURE_API_KEY"),
        ({"id": "azureopenai:chat:gpt4o-prod", "config": {"apiBaseUrl": "https://gw.internal/azure/"}}, CHAT, "azure/gpt4o-prod", "https://gw.internal/azure", "PROMPTLAB_KEY_AZURE_API_KEY"),
        ({"id": "azure:completion:instruct", "config": {"apiHost": "acme.openai.azure.com"}}, CHAT, "azure_text/instruct", "https://acme.openai.azure.com", "PROMPTLAB_KEY_AZURE_API_KEY"),
        ({"id": "azure:embedding:embed-3", "config": {"apiHost": "acme.openai.azure.com"}}, EMBEDDING, "azure/embed-3", "https://acme.openai.azure.com", "PROMPTLAB_KEY_AZURE_API_KEY"),
        ("bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0", CHAT, "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", "", ""),
        ("bedrock:converse:amazon.nova-lite-v1:0", CHAT, "bedrock/converse/amazon.nova-lite-v1:0", "", ""),
        ("bedrock:arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1", CHAT,
         "bedrock/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1", "", ""),
        ("bedrock:embeddings:amazon.titan-embed-text-v2:0", EMBEDDING, "bedrock/amazon.titan-embed-text-v2:0", "", ""),
        ({"id": "bedrock:meta.llama3-1-70b-instruct-v1:0", "config": {"apiKey": "{{env.AWS_BEARER_TOKEN_BEDROCK}}"}},
         CHAT, "bedrock/meta.llama3-1-70b-instruct-v1:0", "", "PROMPTLAB_KEY_AWS_BEARER_TOKEN_BEDROCK"),
        ("vertex:gemini-2.5-pro", CHAT, "vertex_ai/gemini-2.5-pro", "", ""),
        ("vertex:claude-3-5-haiku@20241022", CHAT, "vertex_ai/claude-3-5-haiku@20241022", "", ""),
        ("vertex:llama-3.3-70b-instruct-maas", CHAT, "vertex_ai/meta/llama-3.3-70b-instruct-maas", "", ""),
        ("vertex:embedding:text-embedding-005", EMBEDDING, "vertex_ai/text-embedding-005", "", ""),
        ("google:gemini-2.5-flash", CHAT, "gemini/gemini-2.5-flash", "", "PROMPTLAB_KEY_GOOGLE_API_KEY"),
        ("ollama:llama3.2", CHAT, "ollama/llama3.2", "http://localhost:11434", ""),
        ("ollama:llama3.2:1b", CHAT, "ollama/llama3.2:1b", "http://localhost:11434", ""),
        ("ollama:completion:llama3.2", CHAT, "ollama/llama3.2", "http://localhost:11434", ""),
        ("ollama:chat:llama3.2:3b", CHAT, "ollama_chat/llama3.2:3b", "http://localhost:11434", ""),
        ("ollama:embeddings:nomic-embed-text", EMBEDDING, "ollama/nomic-embed-text", "http://localhost:11434", ""),
        ({"id": "ollama:chat:qwen2.5", "config": {"apiBaseUrl": "http://gpu-box.internal:11434"}}, CHAT, "ollama_chat/qwen2.5", "http://gpu-box.internal:11434", ""),
        ("mistral:mistral-large-latest", CHAT, "mistral/mistral-large-latest", "", "PROMPTLAB_KEY_MISTRAL_API_KEY"),
        ("mistral:chat:mistral-small-latest", CHAT, "mistral/mistral-small-latest", "", "PROMPTLAB_KEY_MISTRAL_API_KEY"),
        ("mistral:embedding:mistral-embed", EMBEDDING, "mistral/mistral-embed", "", "PROMPTLAB_KEY_MISTRAL_API_KEY"),
        ("groq:llama-3.3-70b-versatile", CHAT, "groq/llama-3.3-70b-versatile", "", "PROMPTLAB_KEY_GROQ_API_KEY"),
        ("openrouter:meta-llama/llama-3.1-8b-instruct:free", CHAT, "openrouter/meta-llama/llama-3.1-8b-instruct:free", "", "PROMPTLAB_KEY_OPENROUTER_API_KEY"),
        ("deepseek:deepseek-chat", CHAT, "deepseek/deepseek-chat", "", "PROMPTLAB_KEY_DEEPSEEK_API_KEY"),
        ("xai:grok-3", CHAT, "xai/grok-3", "", "PROMPTLAB_KEY_XAI_API_KEY"),
        ("togetherai:meta-llama/Llama-3.3-70B-Instruct-Turbo", CHAT, "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "", "PROMPTLAB_KEY_TOGETHER_API_KEY"),
        ("fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct", CHAT, "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct", "", "PROMPTLAB_KEY_FIREWORKS_API_KEY"),
        ("perplexity:sonar", CHAT, "perplexity/sonar", "", "PROMPTLAB_KEY_PERPLEXITY_API_KEY"),
        ("cerebras:llama3.1-8b", CHAT, "cerebras/llama3.1-8b", "", "PROMPTLAB_KEY_CEREBRAS_API_KEY"),
        ({"id": "groq:llama-3.1-8b-instant", "config": {"apiKeyEnvar": "TEAM_GROQ_KEY"}}, CHAT, "groq/llama-3.1-8b-instant", "", "PROMPTLAB_KEY_TEAM_GROQ_KEY"),
        ({"id": "openrouter:openai/gpt-4o", "config": {"apiKey": "${OPENROUTER_KEY_2}"}}, CHAT, "openrouter/openai/gpt-4o", "", "PROMPTLAB_KEY_OPENROUTER_KEY_2"),
        ({"id": "anthropic:messages:claude-3-haiku-20240307", "config": {"apiKey": "{{ env.TEAM_ANTHROPIC_KEY }}"}},
         CHAT, "anthropic/claude-3-haiku-20240307", "", "PROMPTLAB_KEY_TEAM_ANTHROPIC_KEY"),
        ({"id": "groq:llama-3.1-8b-instant", "config": {"apiKeyEnvar": "PROMPTLAB_KEY_GROQ"}}, CHAT, "groq/llama-3.1-8b-instant", "", "PROMPTLAB_KEY_GROQ"),
    ],
)  # fmt: skip
def test_each_prefix_maps_to_the_model_string_base_and_key_variable_litellm_needs(raw, use, model, api_base, key_env):
    found = spec(raw)

    assert (found.use, found.model, found.api_base, found.api_key_env) == (use, model, api_base, key_env)


def test_a_base_url_or_key_the_config_leaves_out_is_read_from_promptfoos_variables(monkeypatch):
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://ollama.internal:11434/")
    monkeypatch.setenv("AZURE_OPENAI_API_HOST", "acme.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "set")  # only the older name is set: it holds the key
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://claude.proxy.internal")
    monkeypatch.setenv("OPENAI_API_HOST", "openai.proxy.internal")
    monkeypatch.setenv("GEMINI_API_KEY", "set")

    assert spec("ollama:chat:llama3.2").api_base == "http://ollama.internal:11434"
    azure = spec("azure:chat:prod")
    assert (azure.api_base, azure.api_key_env) == ("https://acme.openai.azure.com", "PROMPTLAB_KEY_AZURE_OPENAI_API_KEY")
    assert spec("anthropic:claude-3-5-haiku-latest").api_base == "https://claude.proxy.internal"
    assert spec("openai:gpt-4o").api_base == "https://openai.proxy.internal/v1"
    assert spec("google:gemini-2.5-flash").api_key_env == "PROMPTLAB_KEY_GEMINI_API_KEY"
    assert spec({"id": "ollama:llama3.2", "config": {"apiBaseUrl": "http://127.0.0.1:11434"}}).api_base == "http://127.0.0.1:11434"  # config wins  # fmt: skip
    monkeypatch.setenv("AZURE_API_KEY", "set")
    assert spec("azure:chat:prod").api_key_env == "PROMPTLAB_KEY_AZURE_API_KEY"  # promptfoo's first name wins when both are set


def test_an_api_base_written_as_an_environment_reference_is_read_for_the_import(monkeypatch):
    monkeypatch.setenv("MY_OLLAMA", "http://gpu-box.internal:11434")
    assert spec({"id": "ollama:chat:llama3.2", "config": {"apiBaseUrl": "{{ env.MY_OLLAMA }}"}}).api_base == "http://gpu-box.internal:11434"

    with pytest.raises(Invalid, match=r"providers\[0\].config.apiBaseUrl: it names the environment variable MY_UNSET, which is not set"):
        spec({"id": "ollama:chat:llama3.2", "config": {"apiBaseUrl": "{{ env.MY_UNSET }}"}})


def test_what_the_catalog_cannot_keep_is_reported_with_the_worker_variable_to_set():
    config = textwrap.dedent("""\
        prompts: ['{{q}}']
        providers:
          - id: bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0
            config: {region: eu-west-1, max_tokens: 256, inferenceModelType: claude}
          - id: azure:chat:prod
            config: {apiHost: acme.openai.azure.com, apiVersion: 2024-10-21}
          - id: vertex:gemini-2.5-pro
            config: {projectId: acme-ml, region: europe-west4}
        """)

    suite = read_suite(ConfigOnly(config.encode(), name="promptfooconfig.yaml"))

    assert suite.providers[0].params == {"max_tokens": 256}
    notes = "\n".join(suite.notes)
    assert "providers[0].config.region: the model catalog keeps no region; the workers call bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0 with the region in their environment variable AWS_REGION_NAME (set it to eu-west-1)." in notes  # fmt: skip
    assert "providers[0]: not imported, no effect here: config.inferenceModelType." in notes
    assert "providers[1].config.apiVersion: the model catalog keeps no apiVersion" in notes and "AZURE_API_VERSION (set it to 2024-10-21)" in notes
    assert "VERTEXAI_PROJECT (set it to acme-ml)" in notes and "VERTEXAI_LOCATION (set it to europe-west4)" in notes


# --- OpenAI-compatible http(s) targets -------------------------------------------------------------


def http_target(**config):
    return {
        "id": "https://llm.internal/v1/chat/completions",
        "config": {
            "method": "POST",
            "headers": {"Content-Type": "application/json", "Authorization": "Bearer {{env.INTERNAL_LLM_KEY}}"},
            "body": {"model": "acme-7b", "messages": [{"role": "user", "content": "{{prompt}}"}], "temperature": 0.2},
            "transformResponse": "json.choices[0].message.content",
            **config,
        },
    }


def test_an_openai_compatible_http_target_is_openai_at_its_base_url():
    found = spec(http_target())
    assert (found.use, found.model, found.api_base, found.api_key_env, found.params) == (
        CHAT, "openai/acme-7b", "https://llm.internal/v1", "INTERNAL_LLM_KEY", {"temperature": 0.2},
    )  # fmt: skip

    by_url = spec({"id": "http", "config": {**http_target()["config"], "url": "http://127.0.0.1:8000/v1/chat/completions", "headers": {}}})
    assert (by_url.model, by_url.api_base, by_url.api_key_env) == ("openai/acme-7b", "http://127.0.0.1:8000/v1", "")

    chat_prompt = spec(http_target(body={"model": "acme-7b", "messages": "{{ prompt }}", "stream": False}))
    assert chat_prompt.ignored == ["config.body.stream"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "https://llm.internal/generate"}, r"config.url: https://llm.internal/generate is not a .../chat/completions URL"),
        ({"body": {"model": "{{model}}", "messages": "{{prompt}}"}}, r"config.body: its model must be a fixed name"),
        ({"body": {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{prompt}}"}]}},
         r"config.body.messages: it must be '\{\{prompt\}\}'"),
        ({"body": {"model": "m", "messages": "{{prompt}}", "user": "{{customer}}"}}, r"config.body.user: it changes with the test"),
        ({"transformResponse": "json.output"}, r"config.transformResponse: promptlab grades choices\[0\].message.content"),
        ({"transformResponse": None}, r"config.transformResponse: .*without it promptfoo grades the whole JSON answer"),
        ({"transformRequest": "file://req.js"}, r"config.transformRequest: it builds the request itself"),
        ({"method": "GET"}, r"config.method: it must be POST"),
    ],
    ids=["not-chat-completions", "templated-model", "extra-system-message", "templated-body", "other-answer", "no-transform",
         "request-transform", "get"],  # fmt: skip
)
def test_an_http_target_promptlab_cannot_call_as_promptfoo_does_is_refused(config, message):
    raw = http_target(**config)
    if "url" in config:
        raw["id"] = "https"

    with pytest.raises(Invalid, match=re.escape(f"{WHERE}.") + message):
        spec(raw)


# --- Keys written into a config --------------------------------------------------------------------


def test_an_api_key_written_into_a_config_is_refused_with_the_path_and_the_apiKeyEnvar_form():
    with pytest.raises(Invalid) as refused:
        spec({"id": "anthropic:messages:claude-3-5-haiku-latest", "config": {"apiKey": "sk-ant-secret-123"}})

    assert refused.value.message == (
        "promptfooconfig.yaml: providers[0].config.apiKey: promptlab never stores API keys, and a key written into the config "
        "would have to be stored; put it in an environment variable of the web and worker processes and name it with "
        "apiKeyEnvar: ANTHROPIC_API_KEY."
    )
    assert refused.value.details == {"key": "promptfooconfig.yaml: providers[0].config.apiKey"}


@pytest.mark.parametrize(
    ("raw", "message", "secret"),
    [
        ({"id": "ollama:chat:llama3.2", "apiKey": "ollama-key-1"}, r"providers\[0\].apiKey: promptlab never stores API keys.*apiKeyEnvar: MY_KEY_VAR", "ollama-key-1"),
        ({"id": "openai:gpt-4o", "config": {"apiKey": "sk-123", "apiKeyEnvar": "OPENAI_API_KEY"}}, r"providers\[0\].config.apiKey: .*apiKeyEnvar: OPENAI_API_KEY", "sk-123"),
        ({"id": "bedrock:amazon.nova-lite-v1:0", "config": {"accessKeyId": "AKIA123", "secretAccessKey": "abc"}},
         r"providers\[0\].config.accessKeyId: a credential written into the config .*AWS_ACCESS_KEY_ID of the web and worker processes", "AKIA123"),
        ({"id": "bedrock:amazon.nova-lite-v1:0", "config": {"secretAccessKey": "{{env.TEAM_AWS_SECRET}}"}},
         r"providers\[0\].config.secretAccessKey: it names TEAM_AWS_SECRET, but LiteLLM reads it from the environment variable AWS_SECRET_ACCESS_KEY", None),
        ({"id": "vertex:gemini-2.5-pro", "config": {"credentials": '{"type": "service_account", "private_key": "pk-1"}'}},
         r"providers\[0\].config.credentials: a credential written into the config .*GOOGLE_APPLICATION_CREDENTIALS", "pk-1"),
        (http_target(headers={"Authorization": "Bearer sk-live-123"}), r"providers\[0\].config.headers.Authorization: promptlab never stores API keys.*Bearer \{\{env.MY_KEY_VAR\}\}", "sk-live-123"),
    ],
    ids=["top-level", "beside-apiKeyEnvar", "aws-keys", "other-aws-variable", "vertex-credentials", "http-bearer"],
)  # fmt: skip
def test_any_credential_written_into_a_provider_is_refused_and_never_repeated(raw, message, secret):
    with pytest.raises(Invalid, match=message) as refused:
        spec(raw)

    assert secret is None or secret not in refused.value.message


def test_a_key_in_a_providers_file_is_refused_naming_that_file(tmp_path):
    (tmp_path / "providers.yaml").write_text("- id: groq:llama-3.1-8b-instant\n  config: {apiKey: gsk_live_123}\n", encoding="utf-8")
    files = write_suite(tmp_path, "prompts: ['{{q}}']\nproviders: ['file://providers.yaml']\n")

    with pytest.raises(Invalid, match=r"^providers.yaml\[0\].config.apiKey: promptlab never stores API keys.*apiKeyEnvar: GROQ_API_KEY\.$"):
        read_suite(files)


def test_a_provider_written_in_code_is_refused(tmp_path):
    (tmp_path / "provider.py").write_text("def call_api(prompt, options, context):\n    return {}\n", encoding="utf-8")
    files = write_suite(tmp_path, "prompts: ['{{q}}']\nproviders: ['file://provider.py:call_api']\n")

    with pytest.raises(Invalid, match=r"providers\[0\]: file://provider.py:call_api is a provider written in code, which promptlab does not run"):
        read_suite(files)


def test_credentials_the_workers_already_read_from_their_environment_are_accepted():
    found = spec({"id": "bedrock:amazon.nova-lite-v1:0", "config": {"accessKeyId": "{{env.AWS_ACCESS_KEY_ID}}",
                                                                      "secretAccessKey": "{{ env.AWS_SECRET_ACCESS_KEY }}"}})  # fmt: skip

    assert (found.model, found.api_key_env, found.ignored, found.notes) == ("bedrock/amazon.nova-lite-v1:0", "", [], [])


# --- Unknown providers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("replicate:meta/llama-3", r"providers\[0\]: unknown provider 'replicate:meta/llama-3'; promptlab imports openai:, anthropic:, azure:.*ollama:.*and OpenAI-compatible http\(s\) targets"),  # fmt: skip
        ("exec:python run.py", r"unknown provider 'exec:python run.py'"),
        ("openai:image:dall-e-3", r"'openai:image:dall-e-3' is a promptfoo image provider; promptlab imports chat and embedding models"),
        ("vertex:video:veo-2-generate", r"is a promptfoo video provider"),
        ("azure:gpt-4o", r"promptfoo has no provider 'azure:gpt-4o'; write azure:chat:<model>, azure:completion:<model>, azure:responses:<model>, azure:embedding:<model>\."),  # fmt: skip
        ("azure:chat:prod", r"providers\[0\].config: azure:chat:prod needs the resource's address: set apiHost"),
    ],
    ids=["unknown", "exec", "image", "video", "azure-without-kind", "azure-without-host"],
)
def test_providers_promptlab_cannot_call_are_refused_naming_the_supported_forms(raw, message):
    with pytest.raises(Invalid, match=message):
        spec(raw)


def test_a_grader_of_the_wrong_use_is_refused_where_a_chat_model_is_needed():
    with pytest.raises(Invalid, match=r"providers\[0\]: 'mistral:embedding:mistral-embed' is not a chat model"):
        parse_provider("mistral:embedding:mistral-embed", where=WHERE)


def test_the_default_embedding_model_follows_only_an_openai_shaped_first_provider():
    proxied = default_embedding(spec({"id": "openai:chat:llama3", "config": {"apiBaseUrl": "http://127.0.0.1:8000/v1", "apiKeyEnvar": "VLLM_KEY"}}))  # fmt: skip
    assert (proxied.model, proxied.api_base, proxied.api_key_env) == ("openai/text-embedding-3-large", "http://127.0.0.1:8000/v1", "PROMPTLAB_KEY_VLLM_KEY")

    after_claude = default_embedding(spec("anthropic:messages:claude-3-5-haiku-latest"))
    assert (after_claude.model, after_claude.api_base, after_claude.api_key_env) == ("openai/text-embedding-3-large", "", "PROMPTLAB_KEY_OPENAI_API_KEY")


# --- Whole imports ------------------------------------------------------------------------------------


@pytest.fixture
def no_model_calls(monkeypatch):
    def refuse():
        raise AssertionError("an import called a model")

    monkeypatch.setattr(gateway, "_litellm", refuse)


def write_suite(folder, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "promptfooconfig.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return FolderFiles(folder)


def counts() -> tuple:
    return tuple(model.objects.count() for model in (Prompt, ModelEndpoint, Dataset, Evaluator, Experiment))


@pytest.mark.django_db
def test_a_suite_on_anthropic_and_ollama_imports_their_endpoints_without_calling_them(tmp_path, settings, no_model_calls):
    settings.PROMPTLAB_API_BASE_HOSTS = ["localhost", "api.anthropic.com"]
    files = write_suite(tmp_path / "local-vs-claude", """\
        description: Local vs Claude
        prompts: ['Answer briefly: {{question}}']
        providers:
          - id: anthropic:messages:claude-3-5-haiku-20241022
            label: claude
            config: {temperature: 0, max_tokens: 256}
          - id: ollama:chat:llama3.2
            label: local
        tests:
          - vars: {question: 'What is the capital of France?'}
            assert: [{type: icontains, value: paris}]
        """)

    report = promptfoo_suite_import(project=ProjectFactory(), actor=None, files=files)

    endpoints = {endpoint.model: endpoint for endpoint in ModelEndpoint.objects.all()}
    assert sorted(endpoints) == ["anthropic/claude-3-5-haiku-20241022", "ollama_chat/llama3.2"]
    claude, local = endpoints["anthropic/claude-3-5-haiku-20241022"], endpoints["ollama_chat/llama3.2"]
    assert (claude.api_base, claude.api_key_env, claude.enabled) == ("", "PROMPTLAB_KEY_ANTHROPIC_API_KEY", True)
    assert (local.api_base, local.api_key_env, local.enabled) == ("http://localhost:11434", "", True)
    assert [(name, created, provider) for name, _, created, provider in report.endpoints] == [
        (claude.name, True, "claude"), (local.name, True, "local"),
    ]  # fmt: skip
    variants = {variant.name: variant for variant in Experiment.objects.get().variants.all()}
    assert (variants["claude"].endpoint, variants["claude"].params) == (claude, {"temperature": 0, "max_tokens": 256})
    assert (variants["local"].endpoint, variants["local"].params) == (local, {})


@pytest.mark.django_db
def test_a_key_in_a_graders_config_refuses_the_whole_import(tmp_path, no_model_calls):
    files = write_suite(tmp_path / "graded", """\
        prompts: ['{{q}}']
        providers: ['ollama:chat:llama3.2']
        tests:
          - vars: {q: hi}
            assert:
              - type: llm-rubric
                value: is friendly
                provider: {id: 'openai:gpt-4o-mini', config: {apiKey: sk-proj-123}}
        """)
    before = counts()

    with pytest.raises(Invalid, match=r"promptfooconfig.yaml: tests\[0\].assert\[0\].provider.config.apiKey: promptlab never stores API keys.*apiKeyEnvar: OPENAI_API_KEY"):  # fmt: skip
        promptfoo_suite_import(project=ProjectFactory(), actor=None, files=files)

    assert counts() == before


@pytest.mark.django_db
def test_an_http_target_suite_runs_against_the_server_it_names(tmp_path, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    files = write_suite(tmp_path / "http-target", f"""\
        prompts: ['Say {{{{word}}}}']
        providers:
          - id: {llm_server.base_url}/chat/completions
            config:
              headers: {{Authorization: 'Bearer {{{{ env.{KEY_ENV} }}}}'}}
              body: {{model: fake-7b, messages: [{{role: user, content: '{{{{prompt}}}}'}}], temperature: 0.3}}
              transformResponse: json.choices[0].message.content
        tests:
          - vars: {{word: hello}}
        """)

    promptfoo_suite_import(project=ProjectFactory(), actor=None, files=files)
    experiment = Experiment.objects.get()
    run_and_score(experiment)

    assert [run.status for run in experiment.runs.all()] == [RunStatus.DONE]
    [request] = llm_server.requests
    assert (request["path"], request["headers"]["authorization"]) == ("/v1/chat/completions", "Bearer sk-test-123")
    assert (request["body"]["model"], request["body"]["temperature"]) == ("fake-7b", 0.3)
    assert request["body"]["messages"] == [{"role": "user", "content": "Say hello"}]
