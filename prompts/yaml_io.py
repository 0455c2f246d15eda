"""Prompts as a folder of YAML files, one prompt per `<name>.yaml`: for review in git and for
moving prompts between projects or installations.

The format of one file (keys marked optional may be left out)::

    name: greeting                  # optional; without it, the file name without .yaml
    description: Greets a customer  # optional, default ""
    tags: [support]                 # optional, default []
    kind: text                      # text | chat
    template: |                     # text prompts: the Jinja2 template
      Hello {{ customer }}!
    messages:                       # chat prompts, instead of template
      - role: system                #   system | user | assistant
        content: You are helpful.
      - placeholder: history        #   a list of messages passed in the variable `history`
    model: gpt-4o-mini              # the `name` of a model endpoint in the catalog
    params: {temperature: 0.2}      # optional, default {}
    variables:                      # optional, default []
      - {name: customer, type: string, required: true}
    strict_variables: true          # optional, default true
    labels: [production, staging]   # optional: labels to point at the imported version

Import rules:

- A file describes the prompt's whole content: a key left out means its default, not
  "keep what the project has". Labels not listed are left where they are, and prompts of
  the project that have no file are left alone.
- The `name` key wins over the file name; the file name is only the default.
- All or nothing: every file is read and saved inside one transaction; when any file has a
  problem nothing at all is imported, and the error lists every problem of every file with
  its file name and line. Only `yaml.safe_load` reads the files.
- An existing prompt is updated through `prompt_update`, so an unchanged file creates no
  version. The change message is `message`, or "Imported from <file name>".
- Labels move through `label_move`, so the services' rules apply: moving `production` needs
  an admin (actor None is the operator's CLI, which may), and, where the project requires
  approval, an approved proposal, the CLI included: a file that would move production is refused
  (listing `production` on the version production already points at moves nothing and passes).
- A prompt may include a snippet imported in the same run: files are retried until no
  further file succeeds, so their order does not matter.

Export writes the latest version of every prompt, or with `label` the version the label
points at (prompts without that label are skipped), listing the labels that point at it.
"""

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.db import transaction

from promptlab.accounts.models import Project
from promptlab.errors import DomainError, Forbidden, Invalid
from promptlab.llm.models import ModelEndpoint
from prompts import selectors, services
from prompts.models import Kind, Label, Prompt

KEYS = ("name", "description", "tags", "kind", "template", "messages", "model", "params", "variables", "strict_variables", "labels")  # fmt: skip
DEFAULTS = {"description": "", "tags": [], "params": {}, "variables": [], "strict_variables": True}
# The file key each field of validate_prompt's details comes from.
FIELD_KEYS = {"kind": "kind", "template": "template", "messages": "messages", "endpoint": "model", "params": "params", "variables": "variables", "name": "name"}  # fmt: skip
_TEMPLATE_PLACE = re.compile(r"^(?:Template|Message (?P<message>\d+))(?:, line (?P<line>\d+))?")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    labels_moved: list[tuple[str, str, int]] = field(default_factory=list)  # (prompt, label, version)


@dataclass
class _Problem:
    line: int | None
    text: str
    forbidden: bool = False

    def __str__(self):
        return f"line {self.line}: {self.text}" if self.line else self.text


class _FileFailed(Exception):
    def __init__(self, problems: list[_Problem]):
        super().__init__(problems)
        self.problems = problems


@dataclass
class _PromptFile:
    path: Path
    name: str
    fields: dict
    labels: list[str]
    keys: dict  # key -> (key node, value node), for line numbers


# --- Import ---------------------------------------------------------------------------------


def prompts_import(*, project: Project, actor, folder: Path, message: str | None = None) -> ImportReport:
    """Import every `*.yaml` file of the folder into the project, all or nothing; raise Invalid
    (Forbidden when the actor lacks a role) listing every file's problems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Invalid(f"{folder} is not a folder.", details={"folder": str(folder)})
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not paths:
        raise Invalid(f"{folder} has no .yaml files to import.", details={"folder": str(folder)})

    problems: dict[str, list[_Problem]] = {}
    parsed: list[_PromptFile] = []
    endpoints = {endpoint.name: endpoint for endpoint in ModelEndpoint.objects.all()}
    for path in paths:
        try:
            parsed.append(_read(path, endpoints))
        except _FileFailed as exc:
            problems[path.name] = exc.problems
    for prompt_file, other in _duplicate_names(parsed):
        problems.setdefault(prompt_file.path.name, []).append(
            _Problem(_line(prompt_file, "name"), f"the prompt {prompt_file.name!r} is also in {other.path.name}.")
        )
    parsed = [prompt_file for prompt_file in parsed if prompt_file.path.name not in problems]

    report = ImportReport()
    with transaction.atomic():
        outcomes, failures = _save_all(parsed, project=project, actor=actor, message=message)
        problems.update(failures)
        if problems:
            _raise(problems, total=len(paths))  # rolls back everything saved above
    for prompt_file in parsed:
        outcome, moves = outcomes[prompt_file.path.name]
        getattr(report, outcome).append(prompt_file.name)
        report.labels_moved.extend(moves)
    return report


def _read(path: Path, endpoints: dict) -> _PromptFile:
    """Parse and check one file's shape and types; the services check the content itself."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise _FileFailed([_Problem(None, "the file is not UTF-8 text.")]) from None
    except OSError as exc:
        raise _FileFailed([_Problem(None, f"cannot read the file: {exc.strerror or exc}.")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not YAML"
        if exc.context and exc.problem and exc.context_mark:
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise _FileFailed([_Problem(mark.line + 1 if mark else None, f"invalid YAML: {problem}.")]) from None
    except yaml.YAMLError as exc:
        raise _FileFailed([_Problem(None, f"invalid YAML: {exc}.")]) from None
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else None
        raise _FileFailed([_Problem(line, f"expected a mapping with the keys {', '.join(KEYS)}.")])

    problems = []
    keys = {}
    for key_node, value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in KEYS:
            problems.append(_Problem(line, f"unknown key {key!r}; the keys are {', '.join(KEYS)}."))
        elif key in keys:
            problems.append(_Problem(line, f"the key {key!r} appears twice (first on line {keys[key][0].start_mark.line + 1})."))
        else:
            keys[key] = (key_node, value_node)
    prompt_file = _PromptFile(path=path, name=path.stem, fields={}, labels=[], keys=keys)
    values = {key: value for key, value in data.items() if key in KEYS and value is not None}

    def problem(key, text):
        problems.append(_Problem(_line(prompt_file, key), text))

    for key, (expected, description) in _TYPES.items():
        if key in values and not expected(values[key]):
            problem(key, f"{key} must be {description}.")
    kind = values.get("kind")
    content_key, other = ("template", "messages") if kind == Kind.TEXT else ("messages", "template")
    if kind is None:
        problem("kind", "kind is required: text or chat.")
    elif kind not in Kind.values:
        problem("kind", f"kind must be text or chat, not {kind!r}.")
    else:
        if content_key not in values:
            problem("kind", f"a {kind} prompt needs the key {content_key!r}.")
        if other in values:
            problem(other, f"a {kind} prompt has {content_key!r}, not {other!r}.")
    model = values.get("model")
    if model is None:
        problems.append(_Problem(None, "model is required: the name of a model in the catalog."))
    elif isinstance(model, str) and model not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none yet"
        problem("model", f"there is no model named {model!r} in the catalog (models: {known}).")
    if problems:
        raise _FileFailed(problems)

    prompt_file.name = values.get("name", path.stem)
    prompt_file.labels = values.get("labels", [])
    prompt_file.fields = {
        **{key: values[key] if key in values else copy.deepcopy(default) for key, default in DEFAULTS.items()},
        "kind": kind,
        # Only the kind's own field: re-importing an export changes nothing even when the
        # other field holds a leftover from before the kind was switched.
        content_key: values[content_key],
        "endpoint": endpoints[model],
    }
    return prompt_file


def _is_list_of_text(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_TYPES = {
    "name": (lambda value: isinstance(value, str), "text"),
    "description": (lambda value: isinstance(value, str), "text"),
    "tags": (_is_list_of_text, "a list of text"),
    "template": (lambda value: isinstance(value, str), "text"),
    "messages": (lambda value: isinstance(value, list), "a list of {role, content} or {placeholder} entries"),
    "model": (lambda value: isinstance(value, str), "the name of a model in the catalog"),
    "params": (lambda value: isinstance(value, dict), "a mapping, e.g. {temperature: 0.2}"),
    "variables": (lambda value: isinstance(value, list), "a list of {name, type, required, default, description}"),
    "strict_variables": (lambda value: isinstance(value, bool), "true or false"),
    "labels": (_is_list_of_text, "a list of label names"),
}


def _duplicate_names(parsed: list[_PromptFile]):
    first = {}
    for prompt_file in parsed:
        if prompt_file.name in first:
            yield prompt_file, first[prompt_file.name]
        else:
            first[prompt_file.name] = prompt_file


def _save_all(parsed: list[_PromptFile], *, project, actor, message) -> tuple[dict, dict]:
    """Save each file in its own savepoint; retry the failed ones while others succeed, so a
    prompt can include a snippet from a later file. Returns (outcomes, problems) by file name."""
    outcomes, failures = {}, {}
    pending = parsed
    while pending:
        failures = {}
        for prompt_file in pending:
            try:
                with transaction.atomic():
                    outcomes[prompt_file.path.name] = _save(prompt_file, project=project, actor=actor, message=message)
            except _FileFailed as exc:
                failures[prompt_file.path.name] = exc.problems
        if len(failures) == len(pending):
            break
        pending = [prompt_file for prompt_file in pending if prompt_file.path.name in failures]
    return outcomes, failures


def _save(prompt_file: _PromptFile, *, project, actor, message) -> tuple[str, list]:
    change = (message or "").strip() or f"Imported from {prompt_file.path.name}"
    existing = Prompt.objects.filter(project=project, name=prompt_file.name).first()
    try:
        if existing is None:
            prompt = services.prompt_create(project=project, actor=actor, name=prompt_file.name, message=change, **prompt_file.fields)  # fmt: skip
            outcome = "created"
        else:
            prompt = services.prompt_update(prompt=existing, actor=actor, message=change, **prompt_file.fields)
            outcome = "unchanged" if prompt.version == existing.version else "updated"
    except DomainError as exc:
        raise _FileFailed(_content_problems(prompt_file, exc)) from None
    moves = []
    for number, label in enumerate(prompt_file.labels):
        before = Label.objects.filter(prompt=prompt, name=label).values_list("version", flat=True).first()
        try:
            services.label_move(prompt=prompt, actor=actor, label=label, version=prompt.version, message=change)
        except DomainError as exc:
            line = _line(prompt_file, "labels", item=number)
            raise _FileFailed([_Problem(line, exc.message, forbidden=isinstance(exc, Forbidden))]) from None
        if before != prompt.version:
            moves.append((prompt.name, label, prompt.version))
    return outcome, moves


def _content_problems(prompt_file: _PromptFile, exc: DomainError) -> list[_Problem]:
    """One problem per field the services refused, each at the line of its key (for a
    template error, the template's own line when the file shows it as a `|` block)."""
    forbidden = isinstance(exc, Forbidden)
    fields = exc.details if isinstance(exc, Invalid) and exc.details and set(exc.details) <= set(FIELD_KEYS) else {}
    if not fields or "name" in fields:
        line = _line(prompt_file, "name") if "name" in fields else None
        return [_Problem(line, exc.message, forbidden=forbidden)]
    problems = []
    for field_name, text in fields.items():
        key = FIELD_KEYS[field_name]
        problems.append(_Problem(_template_line(prompt_file, key, str(text)) or _line(prompt_file, key), f"{key}: {text}"))
    return problems


def _line(prompt_file: _PromptFile, key: str, item: int | None = None) -> int | None:
    """The 1-based line where the key starts, or where its item-th list entry starts."""
    if key not in prompt_file.keys:
        return None
    key_node, value_node = prompt_file.keys[key]
    if item is not None and isinstance(value_node, yaml.SequenceNode) and item < len(value_node.value):
        return value_node.value[item].start_mark.line + 1
    return key_node.start_mark.line + 1


def _template_line(prompt_file: _PromptFile, key: str, text: str) -> int | None:
    """The file line of "Template, line N" / "Message M, line N" errors, where it can be known."""
    match = _TEMPLATE_PLACE.match(text)
    if not match or key not in prompt_file.keys:
        return None
    node = prompt_file.keys[key][1]
    if match["message"]:
        number = int(match["message"])
        if not isinstance(node, yaml.SequenceNode) or number > len(node.value):
            return None
        node = node.value[number - 1]
        if isinstance(node, yaml.MappingNode):
            content = [value for name, value in node.value if name.value == "content"]
            node = content[0] if content else node
    if match["line"] and isinstance(node, yaml.ScalarNode):
        if node.style == "|":  # a literal block: its text starts on the line after the `|`
            return node.start_mark.line + 1 + int(match["line"])
        if match["line"] == "1":
            return node.start_mark.line + 1
    return node.start_mark.line + 1 if match["message"] else None


def _raise(problems: dict[str, list[_Problem]], *, total: int):
    listed = [f"{name}, {problem}" if problem.line else f"{name}: {problem}" for name, file_problems in sorted(problems.items()) for problem in file_problems]  # fmt: skip
    verb = "has" if len(problems) == 1 else "have"
    message = f"Nothing was imported: {len(problems)} of {total} files {verb} problems.\n" + "\n".join(listed)
    details = {name: "; ".join(str(problem) for problem in file_problems) for name, file_problems in sorted(problems.items())}
    forbidden = any(problem.forbidden for file_problems in problems.values() for problem in file_problems)
    raise (Forbidden if forbidden else Invalid)(message, details=details)


# --- Export ---------------------------------------------------------------------------------


class _PromptDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line text as `|` blocks, so templates read as written."""

    def ignore_aliases(self, data):
        return True


def _represent_text(dumper, text: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_PromptDumper.add_representer(str, _represent_text)


def prompt_yaml(data: dict) -> str:
    # yaml.safe_dump cannot take a Dumper; this is SafeDumper plus the block-text representer.
    return yaml.dump(data, Dumper=_PromptDumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)


def prompts_export(*, project: Project, folder: Path, label: str | None = None) -> list[Path]:
    """Write `<name>.yaml` for every prompt of the project: its latest version, or the version
    `label` points at (prompts without the label are skipped). Returns the paths written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise Invalid(f"{folder} exists and is not a folder.", details={"folder": str(folder)})
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for prompt in selectors.prompt_list(project=project).order_by("name"):
        document = prompt_document(prompt, label=label)
        if document is not None:
            path = folder / f"{prompt.name}.yaml"
            path.write_text(document, encoding="utf-8")
            written.append(path)
    return written


def prompt_document(prompt, *, label: str | None = None) -> str | None:
    """The YAML file for one prompt: its latest version, or the version `label` points at
    (None when the prompt has no such label)."""
    labels = {item.name: item.version for item in prompt.labels.all()}
    if label not in (None, "latest") and label not in labels:
        return None
    record = selectors.prompt_version(prompt=prompt, version=labels.get(label))
    model = ModelEndpoint.objects.values_list("name", flat=True).get(pk=record.endpoint_id)
    return prompt_yaml(_export_data(record, model, sorted(name for name, version in labels.items() if version == record.version)))


def _export_data(record, model: str, labels: list[str]) -> dict:
    data = {"name": record.name}
    if record.description:
        data["description"] = record.description
    if record.tags:
        data["tags"] = list(record.tags)
    data["kind"] = record.kind
    if record.kind == Kind.TEXT:
        data["template"] = record.template
    else:
        data["messages"] = list(record.messages or [])
    data["model"] = model
    data["params"] = dict(record.params or {})
    data["variables"] = list(record.variables or [])
    data["strict_variables"] = record.strict_variables
    if labels:
        data["labels"] = labels
    return data
