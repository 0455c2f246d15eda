"""A promptfoo config read into a Suite: its prompts, providers and tests, with defaultTest
merged into every test and array vars expanded as promptfoo does. Nothing is written here;
every problem is an Invalid naming the file and the key (or row) it is about.

- prompts: inline text, `file://` text files (several prompts split by lines of `---`), chat
  JSON (a list of {role, content}, inline or in a .json/.yaml file), `.jsonl` (a chat per line)
  and `.csv` (a `prompt` column, optional `label`); globs. Prompt functions (.py/.js) are refused.
- providers: see providers.py.
- tests: inline, or `file://` CSV (promptfoo's `__expected`, `__expectedN`, `__description`,
  `__threshold`, `__metric`, `__metadata:<key>`, `__config:__expectedN:threshold` columns),
  JSON (a list), JSONL (a test a line) and YAML (a list); globs.
- defaultTest: its asserts are put before each test's own (unless the test sets
  options.disableDefaultAsserts), its vars, options and metadata are the defaults of each
  test's, and its threshold applies where a test has none.
- vars: a `file://` value is the file's text (.json/.yaml: its data; a glob: one test per
  file); a list of strings makes one test per value (all combinations), unless
  options.disableVarExpansion.
"""

import csv
import datetime
import io
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

import yaml

from evaluations.promptfoo import assertions as pf_assertions
from evaluations.promptfoo.assertions import Assertion
from evaluations.promptfoo.files import SuiteFiles
from evaluations.promptfoo.providers import ProviderSpec, parse_provider
from promptlab.errors import Invalid
from promptlab.llm.params import validate_params

MAX_TESTS = 100_000  # after var expansion
CHAT_ROLES = {"system", "user", "assistant"}
CODE_SUFFIXES = (".py", ".js", ".ts", ".mjs", ".cjs", ".rb", ".sh")
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".pdf", ".mp3", ".mp4", ".wav", ".ogg", ".webm", ".mov"}
_SEPARATOR = re.compile(r"\r?\n---\r?\n")
_FUNCTION_SUFFIX = re.compile(r"\.(py|js|ts|mjs|cjs)(:[\w.]+)?$")
# Keys of a config that change nothing here; any other unknown key is listed in the report.
QUIET_KEYS = {"description", "prompts", "providers", "targets", "tests", "defaultTest", "evaluateOptions", "assertionTemplates",
              "outputPath", "sharing", "tags", "writeLatestResults", "commandLineOptions", "metadata", "$schema"}  # fmt: skip
TEST_KEYS = {"description", "vars", "assert", "threshold", "metadata", "options"}
OPTION_EFFECTS = {
    "prefix": "it adds a prefix to the prompt", "suffix": "it adds a suffix to the prompt",
    "transform": "it transforms the output with code", "postprocess": "it transforms the output with code",
    "transformVars": "it transforms the vars with code", "storeOutputAs": "it passes outputs between tests",
    "runSerially": None, "disableDefaultAsserts": None, "disableVarExpansion": None, "provider": None,
    "disableConversationVar": None,
}  # fmt: skip
TEST_KEY_EFFECTS = {
    "providerOutput": "it grades a recorded output instead of calling the model",
    "assertScoringFunction": "it scores its assertions with custom code",
    "provider": "it runs on a provider of its own", "providers": "it runs on some providers only",
    "prompts": "it runs on some prompts only",
}  # fmt: skip


@dataclass
class PromptSpec:
    label: str  # promptfoo's label: the entry's label, a file path, or the text itself
    where: str  # where it was read: "prompts.txt (prompt 2 of 3)"
    kind: str = "text"  # text | chat
    template: str = ""
    messages: list = field(default_factory=list)
    params: dict = field(default_factory=dict)  # a prompt entry's config (model parameters)

    def sources(self) -> list[str]:
        """Every template of the prompt."""
        return [self.template] if self.kind == "text" else [message["content"] for message in self.messages]


@dataclass
class TestSpec:
    where: str  # "tests.csv row 3", "promptfooconfig.yaml: tests[2]"
    vars: dict = field(default_factory=dict)
    asserts: list[Assertion] = field(default_factory=list)
    description: str = ""
    threshold: float | None = None
    metadata: dict = field(default_factory=dict)
    shared: int = 0  # how many of `asserts` (the first ones) are defaultTest's
    grader: object = None  # options.provider: the grading model of similar / llm-rubric
    skip: str = ""  # why the test cannot be imported, or ""


@dataclass
class Suite:
    config_name: str
    description: str
    prompts: list[PromptSpec]
    providers: list[ProviderSpec]
    tests: list[TestSpec]
    repeats: int = 1
    concurrency: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Defaults:
    vars: dict = field(default_factory=dict)
    asserts: list[Assertion] = field(default_factory=list)
    threshold: float | None = None
    options: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


class _Reader:
    def __init__(self, files: SuiteFiles):
        self.files, self.name = files, files.config_name
        self.root: dict = {}
        self.notes: list[str] = []

    # --- files ----------------------------------------------------------------------------------

    def paths(self, reference: str, where: str) -> list[str]:
        path = reference.removeprefix("file://")
        found = self.files.glob(path, where=where)
        if not found:
            raise Invalid(f"{where}: {reference} matches no file.", details={"key": where, "file": path})
        return found

    def data(self, path: str, where: str):
        """A JSON or YAML file's data."""
        text = self.files.text(path, where=where)
        try:
            return _plain(json.loads(text) if path.endswith(".json") else yaml.safe_load(text))
        except (ValueError, yaml.YAMLError) as exc:
            raise Invalid(f"{path} is not valid {'JSON' if path.endswith('.json') else 'YAML'} ({where}): {_problem(exc)}", details={"file": path}) from None  # fmt: skip

    def value_file(self, reference: str, where: str):
        """An assertion value or a var given as file://: text, or the data of .json/.yaml."""
        path = reference.removeprefix("file://")
        if path.lower().endswith((".json", ".yaml", ".yml")):
            return self.data(path, where)
        return self.files.text(path, where=where)

    # --- the config -----------------------------------------------------------------------------

    def read(self) -> Suite:
        text = self.files.config_text()
        try:
            root = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise Invalid(f"{self.name} is not YAML: {_problem(exc)}", details={"file": self.name}) from None
        if not isinstance(root, dict):
            raise Invalid(f"{self.name} is not a promptfoo config: expected a mapping with prompts, providers and tests.", details={"file": self.name})  # fmt: skip
        self.root = root
        unknown = sorted(str(key) for key in root if key not in QUIET_KEYS)
        if unknown:
            self.notes.append(f"{self.name}: not imported, no effect here: {', '.join(unknown)}.")
        options = root.get("evaluateOptions") or {}
        repeats = options.get("repeat", 1) if isinstance(options, dict) else 1
        concurrency = options.get("maxConcurrency") if isinstance(options, dict) else None
        return Suite(
            config_name=self.name, description=str(root.get("description") or ""), prompts=self.prompts(root.get("prompts")),
            providers=self.providers(root.get("providers", root.get("targets"))), tests=self.tests(root.get("tests"), self.defaults(root.get("defaultTest"))),
            repeats=repeats if isinstance(repeats, int) and 1 <= repeats <= 100 else 1,
            concurrency=concurrency if isinstance(concurrency, int) and 1 <= concurrency <= 256 else None, notes=self.notes,
        )  # fmt: skip

    # --- prompts --------------------------------------------------------------------------------

    def prompts(self, raw) -> list[PromptSpec]:
        where = f"{self.name}: prompts"
        if raw is None:  # promptfoo's default prompt passes the `prompt` var through
            return [PromptSpec(label="{{prompt}}", where=where, template="{{ prompt }}")]
        if isinstance(raw, str):
            raw = [raw]
        elif isinstance(raw, dict):  # the older {path: label} form
            raw = [{"id": path, "label": label} for path, label in raw.items()]
        if not isinstance(raw, list) or not raw:
            raise Invalid(f"{where}: must be a list of prompts.", details={"key": where})
        specs = []
        for index, entry in enumerate(raw):
            entry_where = f"{where}[{index}]"
            label, config = None, {}
            if isinstance(entry, dict):
                text, label, config = entry.get("raw", entry.get("id")), entry.get("label"), entry.get("config") or {}
            else:
                text = entry
            if not isinstance(text, str) or not text.strip():
                raise Invalid(f"{entry_where}: a prompt is a text, a file://path, or an object with raw or id.", details={"key": entry_where})  # fmt: skip
            found = self.prompt_files(text, label, entry_where) if text.startswith("file://") else [_prompt_text(text, label or text, entry_where)]  # fmt: skip
            params = dict(config) if isinstance(config, dict) else {}
            try:
                validate_params(params)
            except Invalid as exc:
                raise Invalid(f"{entry_where}.config: {exc.message}", details={"key": f"{entry_where}.config"}) from None
            specs.extend(replace(spec, params=params) for spec in found)
        return specs

    def prompt_files(self, reference: str, label, where: str) -> list[PromptSpec]:
        if _FUNCTION_SUFFIX.search(reference) or reference.startswith("file://exec:"):
            raise Invalid(f"{where}: {reference} builds the prompt with code, which promptlab does not run; write it as text or chat JSON.", details={"key": where})  # fmt: skip
        specs = []
        for path in self.paths(reference, where):
            suffix = PurePosixPath(path).suffix.lower()
            if suffix in (".json", ".yaml", ".yml"):
                found = [_chat(self.data(path, where), path, path)]
            elif suffix == ".jsonl":
                lines = [line for line in self.files.text(path, where=where).splitlines() if line.strip()]
                found = [_chat(_json_line(line, f"{path} line {number}"), f"{path} line {number}", f"{path}: {number}")
                         for number, line in enumerate(lines, start=1)]  # fmt: skip
            elif suffix == ".csv":
                found = self.prompt_rows(path, where)
            else:
                parts = [part.strip() for part in _SEPARATOR.split(self.files.text(path, where=where)) if part.strip()]
                found = [_prompt_text(part, path if len(parts) == 1 else f"{path}: {number}", f"{path}" + (f" (prompt {number} of {len(parts)})" if len(parts) > 1 else ""))  # fmt: skip
                         for number, part in enumerate(parts, start=1)]
            if not found:
                raise Invalid(f"{where}: {path} holds no prompt.", details={"key": where, "file": path})
            specs.extend(found)
        if label:
            specs = [replace(spec, label=label if len(specs) == 1 else f"{label}: {number}") for number, spec in enumerate(specs, start=1)]
        return specs

    def prompt_rows(self, path: str, where: str) -> list[PromptSpec]:
        rows = list(csv.DictReader(io.StringIO(self.files.text(path, where=where))))
        if rows and "prompt" not in rows[0]:
            raise Invalid(f"{path}: a CSV of prompts needs a `prompt` column ({where}).", details={"file": path})
        return [_prompt_text(row["prompt"], row.get("label") or f"{path}: {number}", f"{path} row {number}")
                for number, row in enumerate(rows, start=1) if (row.get("prompt") or "").strip()]  # fmt: skip

    # --- providers ------------------------------------------------------------------------------

    def providers(self, raw) -> list[ProviderSpec]:
        where = f"{self.name}: providers"
        if raw is None:
            raise Invalid(f"{where}: the suite names no provider; add one such as openai:chat:gpt-4o-mini.", details={"key": where})
        entries = []
        for index, entry in enumerate(raw if isinstance(raw, list) else [raw]):
            entry_where = f"{where}[{index}]"
            if isinstance(entry, str) and entry.startswith("file://"):
                if _FUNCTION_SUFFIX.search(entry):
                    raise Invalid(f"{entry_where}: {entry} is a provider written in code, which promptlab does not run.", details={"key": entry_where})  # fmt: skip
                for path in self.paths(entry, entry_where):
                    loaded = self.data(path, entry_where)
                    entries.extend((item, f"{path}[{number}]") for number, item in enumerate(loaded if isinstance(loaded, list) else [loaded]))  # fmt: skip
            else:
                entries.append((entry, entry_where))
        specs = [parse_provider(entry, where=entry_where) for entry, entry_where in entries]
        if not specs:
            raise Invalid(f"{where}: the suite names no provider.", details={"key": where})
        for spec in specs:
            if spec.ignored:
                self.notes.append(f"{spec.where}: not imported, no effect here: {', '.join(spec.ignored)}.")
            self.notes.extend(spec.notes)
        return specs

    # --- tests ----------------------------------------------------------------------------------

    def defaults(self, raw) -> _Defaults:
        where = f"{self.name}: defaultTest"
        if raw is None:
            return _Defaults()
        if isinstance(raw, str) and raw.startswith("file://"):
            path = raw.removeprefix("file://")
            raw, where = self.data(path, where), path
        if not isinstance(raw, dict):
            raise Invalid(f"{where}: must be a mapping (vars, assert, options, threshold, metadata).", details={"key": where})
        return _Defaults(
            vars=self.vars(raw.get("vars"), where), asserts=self.assert_list(raw.get("assert"), where),
            threshold=_threshold(raw.get("threshold"), where), options=_mapping(raw.get("options"), f"{where}.options"),
            metadata=_mapping(raw.get("metadata"), f"{where}.metadata"),
        )  # fmt: skip

    def assert_list(self, raw, where: str) -> list[Assertion]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise Invalid(f"{where}.assert: must be a list of assertions.", details={"key": f"{where}.assert"})
        return [self.with_file_value(pf_assertions.assertion_from_dict(item, where=f"{where}.assert[{index}]", root=self.root))
                for index, item in enumerate(raw)]  # fmt: skip

    def with_file_value(self, assertion: Assertion) -> Assertion:
        """An assertion whose value is file://... with the file's content as its value."""
        value = assertion.value
        if not (isinstance(value, str) and value.startswith("file://")):
            return assertion
        if _FUNCTION_SUFFIX.search(value):
            return replace(assertion, problem=f"its value is computed by code ({value})")
        loaded = self.value_file(value, assertion.where)
        return replace(assertion, value=loaded.strip() if isinstance(loaded, str) else loaded)  # promptfoo trims text files

    def vars(self, raw, where: str) -> dict:
        if raw is None:
            return {}
        if isinstance(raw, str) and raw.startswith("file://"):
            raw = self.data(raw.removeprefix("file://"), f"{where}.vars")
        if not isinstance(raw, dict):
            raise Invalid(f"{where}.vars: must be a mapping of variable names to values.", details={"key": f"{where}.vars"})
        return {str(name): _plain(value) for name, value in raw.items()}

    def tests(self, raw, defaults: _Defaults) -> list[TestSpec]:
        where = f"{self.name}: tests"
        if raw is None:
            raw = [{}]  # promptfoo runs each prompt once without a test
        entries = raw if isinstance(raw, list) else [raw]
        tests = []
        for index, entry in enumerate(entries):
            entry_where = f"{where}[{index}]"
            if isinstance(entry, str):
                if not entry.startswith("file://"):
                    raise Invalid(f"{entry_where}: a test is a mapping or a file://path, not {entry!r}.", details={"key": entry_where})
                for path in self.paths(entry, entry_where):
                    tests.extend(self.test_file(path, entry_where, defaults))
            elif isinstance(entry, dict):
                tests.extend(self.test(entry, entry_where, defaults))
            else:
                raise Invalid(f"{entry_where}: a test is a mapping with vars and assert.", details={"key": entry_where})
            if len(tests) > MAX_TESTS:
                raise Invalid(f"{where}: more than {MAX_TESTS:,} tests after expanding vars.", details={"key": where})
        return tests

    def test_file(self, path: str, where: str, defaults: _Defaults) -> list[TestSpec]:
        suffix = PurePosixPath(path).suffix.lower()
        if suffix in CODE_SUFFIXES:
            raise Invalid(f"{where}: {path} generates tests with code, which promptlab does not run.", details={"key": where, "file": path})  # fmt: skip
        if suffix == ".csv":
            rows = csv.DictReader(io.StringIO(self.files.text(path, where=where)))
            return [test for number, row in enumerate(rows, start=1) if any((value or "").strip() for value in row.values())
                    for test in self.csv_test(row, f"{path} row {number}", defaults)]  # fmt: skip
        if suffix == ".jsonl":
            lines = self.files.text(path, where=where).splitlines()
            loaded = [(_json_line(line, f"{path} line {number}"), f"{path} line {number}") for number, line in enumerate(lines, start=1) if line.strip()]  # fmt: skip
        elif suffix in (".json", ".yaml", ".yml"):
            data = self.data(path, where)
            items = data if isinstance(data, list) else [data]
            loaded = [(item, f"{path} [{number}]") for number, item in enumerate(items)]
        else:
            raise Invalid(f"{where}: {path}: promptlab reads tests from .csv, .json, .jsonl and .yaml files.", details={"key": where, "file": path})  # fmt: skip
        tests = []
        for item, item_where in loaded:
            if not isinstance(item, dict):
                raise Invalid(f"{item_where}: a test is a mapping with vars and assert.", details={"file": path})
            tests.extend(self.test(item, item_where, defaults))
        return tests

    def test(self, raw: dict, where: str, defaults: _Defaults) -> list[TestSpec]:
        options = _mapping(raw.get("options"), f"{where}.options")
        asserts = self.assert_list(raw.get("assert"), where)
        skip = [f"its {key} ({effect})" for key, effect in TEST_KEY_EFFECTS.items() if raw.get(key)]
        skip += [f"options.{key} ({effect})" for key, effect in OPTION_EFFECTS.items() if effect and options.get(key)]
        unknown = sorted(set(raw) - TEST_KEYS - set(TEST_KEY_EFFECTS))
        if unknown:
            self.notes.append(f"{where}: not imported, no effect here: {', '.join(unknown)}.")
        own = TestSpec(where=where, vars=self.vars(raw.get("vars"), where), asserts=asserts, description=str(raw.get("description") or ""),
                       threshold=_threshold(raw.get("threshold"), where), metadata=_mapping(raw.get("metadata"), f"{where}.metadata"),
                       skip="; ".join(skip))  # fmt: skip
        return self.merged(own, options, defaults)

    def csv_test(self, row: dict, where: str, defaults: _Defaults) -> list[TestSpec]:
        """A CSV row as promptfoo reads it: special `__` columns, every other column a var."""
        own = TestSpec(where=where)
        options, metric, configs = {}, None, {}
        for key, value in ((str(key).strip(), value or "") for key, value in row.items() if key is not None):
            if key.startswith("__expected"):
                if value.strip():
                    own.asserts.append(self.with_file_value(pf_assertions.assertion_from_cell(value, where=f"{where}, column {key}")))
            elif key in ("__prefix", "__suffix"):
                options[key[2:]] = value
            elif key == "__description":
                own.description = value
            elif key == "__metric":
                metric = value
            elif key == "__threshold":
                own.threshold = _cell_number(value) or None  # promptfoo ignores 0 and what is not a number
            elif key == "__providerOutput":
                own.skip = f"its __providerOutput ({TEST_KEY_EFFECTS['providerOutput']})" if value else own.skip
            elif key.startswith("__metadata:"):
                _cell_metadata(key.removeprefix("__metadata:"), value, own.metadata)
            elif key.startswith("__config:"):
                if value.strip():
                    index, threshold = _cell_config(key, value, where)
                    configs[index] = threshold
            elif key == "__metadata":
                continue
            else:
                own.vars[key] = value
        for index, threshold in configs.items():
            if index < len(own.asserts):
                own.asserts[index] = replace(own.asserts[index], threshold=threshold)
                own.metadata["threshold"] = threshold
        if metric:
            own.asserts = [replace(assertion, metric=metric) for assertion in own.asserts]
        if options.get("prefix") or options.get("suffix"):
            own.skip = "; ".join(filter(None, [own.skip, "its __prefix/__suffix (it adds text to the prompt)"]))
        return self.merged(own, {}, defaults)

    def merged(self, own: TestSpec, options: dict, defaults: _Defaults) -> list[TestSpec]:
        """The test with defaultTest merged in, once per combination of its vars."""
        options = {**defaults.options, **options}
        shared = [] if options.get("disableDefaultAsserts") else list(defaults.asserts)
        own.asserts, own.shared = shared + own.asserts, len(shared)
        own.threshold = own.threshold if own.threshold is not None else defaults.threshold
        own.metadata = {**defaults.metadata, **own.metadata}
        own.grader = options.get("provider")
        merged_vars = {**defaults.vars, **own.vars}
        axes, skip = [], own.skip
        for name, value in merged_vars.items():
            values, problem = self.var_values(name, value, own.where, expand=not options.get("disableVarExpansion"))
            skip = skip or problem
            axes.append([(name, item) for item in values])
        return [replace(own, vars=dict(combination), skip=skip) for combination in itertools.product(*axes)]

    def var_values(self, name: str, value, where: str, *, expand: bool) -> tuple[list, str]:
        """The values a var takes (one test each), and why the test cannot be imported, if so."""
        if isinstance(value, str) and value.startswith("file://"):
            values = []
            for path in self.paths(value, f"{where}.vars.{name}"):
                if PurePosixPath(path).suffix.lower() in BINARY_SUFFIXES:
                    return [value], f"vars.{name}: {path} is not text (promptlab's variables are text and JSON)"
                if path.endswith(CODE_SUFFIXES):
                    return [value], f"vars.{name}: {path} computes the value with code"
                values.append(self.value_file(path, f"{where}.vars.{name}"))
            return values, ""
        if expand and isinstance(value, list) and value and isinstance(value[0], str):
            return value, ""
        return [value], ""


def read_suite(files: SuiteFiles) -> Suite:
    """The suite the config describes, or Invalid naming the file and key of the first problem."""
    return _Reader(files).read()


# --- small readers --------------------------------------------------------------------------------


def _problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(exc, 'problem', None) or exc}"
    return str(exc)


def _plain(value):
    """Loaded data as JSON can store it: YAML dates become ISO text, keys become text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _json_line(line: str, where: str):
    try:
        return json.loads(line)
    except ValueError as exc:
        raise Invalid(f"{where}: invalid JSON: {exc}.", details={"file": where}) from None


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{where}: must be a mapping.", details={"key": where})
    return _plain(value)


def _threshold(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"{where}.threshold: must be a number, not {value!r}.", details={"key": f"{where}.threshold"})
    return float(value)


def _cell_number(text: str) -> float | None:
    match = re.match(r"^\s*[-+]?(\d+\.?\d*|\.\d+)", text)  # JavaScript's parseFloat reads a leading number
    return float(match.group(0)) if match else None


def _cell_metadata(key: str, value: str, metadata: dict) -> None:
    if not value.strip():
        return
    if key.endswith("[]"):
        metadata[key[:-2]] = [part.strip().replace("\\,", ",") for part in re.split(r"(?<!\\),", value)]
    else:
        metadata[key] = value


def _cell_config(key: str, value: str, where: str) -> tuple[int, float]:
    parts = key.removeprefix("__config:").split(":")
    match = re.fullmatch(r"__expected(\d*)", parts[0]) if len(parts) == 2 else None
    if match is None or parts[1] != "threshold" or match.group(1) == "0":
        raise Invalid(f"{where}, column {key}: write __config:__expected:threshold or __config:__expected<N>:threshold.", details={"column": key})  # fmt: skip
    threshold = _cell_number(value)
    if threshold is None:
        raise Invalid(f"{where}, column {key}: {value!r} is not a number.", details={"column": key})
    return (int(match.group(1)) - 1 if match.group(1) else 0), threshold


def _prompt_text(text: str, label: str, where: str) -> PromptSpec:
    """Inline text, or chat messages when it is a JSON list of {role, content}."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, list) and data and all(isinstance(message, dict) and "role" in message for message in data):
            return _chat(data, where, label)
    return PromptSpec(label=label, where=where, template=text)


def _chat(data, where: str, label: str) -> PromptSpec:
    if not isinstance(data, list) or not data:
        raise Invalid(f"{where}: a chat prompt is a list of {{role, content}} messages.", details={"file": where})
    messages = []
    for number, message in enumerate(data, start=1):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES or not isinstance(message.get("content"), str):
            raise Invalid(
                f"{where}: message {number} must be {{role: system|user|assistant, content: <text>}} "
                "(content parts such as images are not supported).",
                details={"file": where},
            )
        messages.append({"role": message["role"], "content": message["content"]})
    return PromptSpec(label=label, where=where, kind="chat", messages=messages)
