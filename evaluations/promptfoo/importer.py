"""Importing a promptfoo suite: prompts (one version each), model endpoints (reused when the
catalog has a matching one), a dataset (one item per test and combination of its vars),
evaluators for its shared assertions and a draft experiment of every prompt x provider, all in
one transaction, with a report of everything created and everything skipped.

Where assertions go, so that promptlab grades each test as promptfoo does (evaluations.grading,
the one rule: every check passes, or the weighted score reaches the test's threshold):

- each test's own `assert` become its dataset item's assertions, and its `threshold` the
  item's threshold: a test is graded by its own assertions only;
- `defaultTest.assert`, which apply to every test, become evaluators attached to the
  experiment (one per distinct assertion), as they apply to every item. When some test sets
  `options.disableDefaultAsserts` or grades them with a model of its own, they cannot apply to
  every item alike, and each item carries them as its own instead (the report says so).

Model-graded assertions (llm-rubric, similar) get their rubric prompt and grading endpoint
here, named in the check's config. Each item keeps in metadata["promptfoo"] what the export
(results.py) shows of it: the test's place and description and each assertion as promptfoo
writes it, those it skipped included.
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

import structlog
from django.db import transaction
from django.utils.text import slugify

from evaluations import services as evaluation_services
from evaluations.kinds.judge import VARIABLES as JUDGE_VARIABLES
from evaluations.models import Evaluator
from evaluations.promptfoo import providers as pf_providers
from evaluations.promptfoo.assertions import Assertion, Mapped, Unsupported, evaluator_for
from evaluations.promptfoo.config import PromptSpec, Suite, TestSpec, read_suite
from evaluations.promptfoo.files import SuiteFiles
from evaluations.promptfoo.providers import ProviderSpec
from experiments import datasets
from experiments import services as experiment_services
from experiments.models import Dataset
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import Invalid
from promptlab.llm import services as llm_services
from promptlab.llm.models import ModelEndpoint
from prompts import rendering
from prompts import services as prompt_services

logger = structlog.get_logger(__name__)

MAX_SUITE_NAME = 40
RUBRIC_SYSTEM = (
    "You grade an answer against a rubric. The answer is in <Output> and the rubric in <Rubric>. The answer passes "
    "when what the rubric says is true of it. Reply with JSON only: {\"score\": a number from 0 (the rubric is not met "
    "at all) to 1 (it is fully met), \"reasoning\": one or two sentences saying why}."
)
_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_RUBRIC_NAME = re.compile(r"\{\{(-?)\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class ImportReport:
    """What an import created and skipped, for the command's output and the upload page."""

    suite: str
    config_name: str
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (name, where it came from)
    endpoints: list[tuple[str, str, bool, str]] = field(default_factory=list)  # (name, model at base, created, provider)
    dataset: str = ""
    items: list[tuple[int, str, str, list[str]]] = field(default_factory=list)  # (row, test, description, its own assertions)
    evaluators: list[tuple[str, str, str]] = field(default_factory=list)  # (name, kind, assertion): defaultTest's, on every item
    skipped_items: list[tuple[str, str]] = field(default_factory=list)  # (test, reason)
    skipped_asserts: list[tuple[str, str, str]] = field(default_factory=list)  # (where, assertion, reason)
    notes: list[str] = field(default_factory=list)
    experiment_id: int | None = None
    experiment_name: str = ""
    variants: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"Imported the promptfoo suite {self.suite!r} from {self.config_name}."]
        out += [f"Prompt created: {name} (from {where}), version 1" for name, where in self.prompts]
        out += [f"Model endpoint {'created' if created else 'reused'}: {name} ({model}) for {provider}"
                for name, model, created, provider in self.endpoints]  # fmt: skip
        out += [f"Dataset created: {self.dataset} with {len(self.items)} item{'s' * (len(self.items) != 1)}"]
        out += [f"  item row {row}: {where}{' — ' + description if description else ''}{' — asserts ' + '; '.join(asserts) if asserts else ''}"
                for row, where, description, asserts in self.items]  # fmt: skip
        out += [f"Evaluator created (every item): {name} ({kind}) for {assertion}" for name, kind, assertion in self.evaluators]
        out += [f"Skipped test: {where}: {reason}" for where, reason in self.skipped_items]
        out += [f"Skipped assertion: {where}: {assertion}: {reason}" for where, assertion, reason in self.skipped_asserts]
        out += [f"Note: {note}" for note in self.notes]
        out += [f"Experiment created (draft, ready to start): #{self.experiment_id} {self.experiment_name} with variants {', '.join(self.variants)}"]  # fmt: skip
        return out


@dataclass
class _Check:
    """One assertion of one test on its way to a check: an item's assertion or an evaluator."""

    assertion: Assertion
    mapped: Mapped | None = None
    key: str = ""  # what the check does: equal keys are the same check


@transaction.atomic
def promptfoo_suite_import(*, project: Project, actor, files: SuiteFiles, name: str | None = None) -> ImportReport:
    """Import the suite into the project, all or nothing, and report what was created and
    skipped. Model endpoints missing from the catalog are created only for superusers and the
    operator (actor None); anyone else is told which ones an admin must add first."""
    authorize(actor, project, Action.EDIT)
    suite = read_suite(files)
    suite_name = _suite_name(name, suite, files)
    if Dataset.objects.filter(project=project, name=suite_name).exists():
        raise Invalid(
            f"The project already has a dataset named {suite_name!r}: was this suite imported before? Import it under another name.",
            details={"name": suite_name},
        )
    report = ImportReport(suite=suite_name, config_name=suite.config_name, notes=list(suite.notes))
    tests, checks = _checked(*_plan(suite, report), report, suite.config_name)
    endpoints = _Endpoints(actor=actor, report=report)
    graders = _graders(suite, tests, checks)
    endpoints.resolve([*suite.providers, *graders.values()])

    prompts = _prompts_create(project, actor, suite, suite_name, tests, endpoints, report)
    rubrics = _Rubrics(project=project, actor=actor, suite_name=suite_name, report=report, config_name=suite.config_name)
    _finalize(checks, graders, endpoints, rubrics, project, report)
    tests, checks = _checked(tests, checks, report, suite.config_name)  # some evaluators may have been refused
    shared = _shared(tests, checks, report)
    evaluators = _evaluators_create(project, actor, suite_name, suite.config_name, checks[0][:shared], report)

    dataset = datasets.dataset_create(project=project, actor=actor, name=suite_name, description=_dataset_description(suite))
    # dataset_items_add normalizes the assertions (experiments.extensions.item_assertions_normalize).
    items = [_item(test, test_checks[shared:], test_checks[:shared], evaluators) for test, test_checks in zip(tests, checks, strict=True)]
    datasets.dataset_items_add(dataset=dataset, actor=actor, items=items)
    report.dataset = dataset.name
    report.items = [
        (row, test.where, test.description, [check.assertion.label() for check in test_checks[shared:] if check.mapped])
        for row, (test, test_checks) in enumerate(zip(tests, checks, strict=True), start=1)
    ]  # fmt: skip

    variants = _variants(suite, prompts, endpoints)
    experiment = experiment_services.experiment_create(
        project=project, actor=actor, name=f"{suite_name} (promptfoo)", dataset=dataset, variants=variants,
        repeats=suite.repeats, concurrency=suite.concurrency or 8,
    )  # fmt: skip
    evaluation_services.experiment_evaluators_set(experiment=experiment, actor=actor, evaluators=list(evaluators.values()))
    report.experiment_id, report.experiment_name = experiment.pk, experiment.name
    report.variants = [variant["name"] for variant in variants]
    logger.info("evaluations.promptfoo_imported", project_id=project.pk, suite=suite_name, experiment_id=experiment.pk,
                items=len(tests), evaluators=len(report.evaluators), item_assertions=sum(len(item["assertions"]) for item in items))  # fmt: skip
    return report


# --- Planning ---------------------------------------------------------------------------------


def _suite_name(name: str | None, suite: Suite, files: SuiteFiles) -> str:
    given = (name or "").strip()
    if given:
        if slugify(given) != given or len(given) > MAX_SUITE_NAME:
            raise Invalid(f"{given!r} is not a suite name: use at most {MAX_SUITE_NAME} lower-case letters, digits and hyphens.", details={"name": given})  # fmt: skip
        return given
    folder = str(getattr(files, "root", "")).rstrip("/").rsplit("/", 1)[-1]
    stem = files.config_name.rsplit(".", 1)[0]
    for candidate in (suite.description, folder, "" if stem.startswith("promptfooconfig") else stem):
        slug = _slug(candidate)[:MAX_SUITE_NAME].strip("-")
        if slug:
            return slug
    return "promptfoo"


def _plan(suite: Suite, report: ImportReport) -> tuple[list[TestSpec], list[list[_Check]]]:
    """The tests that can be imported, each with its assertions mapped to evaluators; the rest reported."""
    tests, checks = [], []
    for test in suite.tests:
        if test.skip:
            report.skipped_items.append((test.where, f"not imported: {test.skip}"))
            continue
        mine = []
        for assertion in test.asserts:
            try:
                mine.append(_Check(assertion, evaluator_for(assertion)))
            except Unsupported as exc:
                report.skipped_asserts.append((assertion.where, assertion.label(), str(exc)))
                mine.append(_Check(assertion))
        tests.append(test)
        checks.append(mine)
    return tests, checks


def _checked(tests: list[TestSpec], checks: list[list[_Check]], report: ImportReport, config_name: str) -> tuple[list, list]:
    """Leave out the tests all of whose assertions were skipped: they would always pass."""
    kept = [(test, mine) for test, mine in zip(tests, checks, strict=True) if not test.asserts or any(check.mapped for check in mine)]
    for test, mine in zip(tests, checks, strict=True):
        if test.asserts and not any(check.mapped for check in mine):
            report.skipped_items.append((test.where, "not imported: none of its assertions can be checked here, so it would always pass"))  # fmt: skip
    if not kept:
        raise Invalid(f"{config_name}: no test can be imported; see why: " + "; ".join(f"{where}: {why}" for where, why in report.skipped_items[:5]))  # fmt: skip
    return [test for test, _ in kept], [mine for _, mine in kept]


def _graders(suite: Suite, tests: list[TestSpec], checks: list[list[_Check]]) -> dict[tuple, ProviderSpec]:
    """The model of each model-graded check, by (test index, check index): the assertion's
    provider, else the test's options.provider, else promptfoo's default reached like the
    suite's first provider (its chat model grades rubrics)."""
    first = suite.providers[0]
    found = {}
    for test_index, (test, test_checks) in enumerate(zip(tests, checks, strict=True)):
        for check_index, check in enumerate(test_checks):
            use = check.mapped and check.mapped.grader_use
            if not use:
                continue
            spec = pf_providers.grader(check.assertion.provider, use=use, where=f"{check.assertion.where}.provider") or pf_providers.grader(
                test.grader, use=use, where=f"{test.where}.options.provider"
            )  # fmt: skip
            found[(test_index, check_index)] = spec or (first if use == pf_providers.CHAT else pf_providers.default_embedding(first))
    return found


class _Endpoints:
    """The catalog's endpoint for each provider: an enabled one with the same model, api_base
    and key variable, else a new one (superusers and the operator only)."""

    def __init__(self, *, actor, report: ImportReport):
        self.actor, self.report = actor, report
        self.by_key: dict[tuple, ModelEndpoint] = {}

    def resolve(self, specs: list[ProviderSpec]) -> None:
        missing = []
        for spec in specs:
            if spec.catalog_key() in self.by_key:
                continue
            endpoint = (
                ModelEndpoint.objects.filter(model=spec.model, api_base__in=[spec.api_base, f"{spec.api_base}/"], api_key_env=spec.api_key_env, enabled=True)
                .order_by("pk").first()
            )  # fmt: skip
            if endpoint is not None:
                self.by_key[spec.catalog_key()] = endpoint
                self.report.endpoints.append((endpoint.name, _shown(spec), False, spec.name))
            elif self.actor is not None and not self.actor.is_superuser:
                missing.append(spec)
            else:
                self.by_key[spec.catalog_key()] = self._create(spec)
        if missing:
            listed = "; ".join(f"{spec.where}: {_shown(spec)} with its key in {spec.api_key_env}" for spec in missing)
            raise Invalid(
                f"The model catalog has no endpoint for these providers, and only a superuser can add one: {listed}. "
                "Ask an admin to add them (or to run manage.py import_promptfoo), then import again.",
                details={"providers": [spec.id for spec in missing]},
            )

    def _create(self, spec: ProviderSpec) -> ModelEndpoint:
        base = _slug(spec.model.split("/", 1)[-1])[:56] or "model"
        name, number = base, 1
        while ModelEndpoint.objects.filter(name=name).exists():
            number += 1
            name = f"{base}-{number}"
        try:
            endpoint, _ = llm_services.endpoint_save(
                name=name, actor=self.actor, model=spec.model, api_base=spec.api_base, api_key_env=spec.api_key_env,
                display_name=f"{spec.model.split('/', 1)[-1]} (from promptfoo)",
            )  # fmt: skip
        except Invalid as exc:
            raise Invalid(f"{spec.where}: {exc.message}", details={"key": spec.where, **exc.details}) from None
        self.report.endpoints.append((endpoint.name, _shown(spec), True, spec.name))
        return endpoint

    def __getitem__(self, spec: ProviderSpec) -> ModelEndpoint:
        return self.by_key[spec.catalog_key()]


def _shown(spec: ProviderSpec) -> str:
    return f"{spec.model}{' at ' + spec.api_base if spec.api_base else ''}"


# --- Prompts ---------------------------------------------------------------------------------------


def _allowed(prompt: PromptSpec, provider: ProviderSpec) -> bool:
    """promptfoo's per-provider prompt filter: a label, a group prefix (`group` or `group:*`)."""
    if provider.prompts is None:
        return True
    label = prompt.label
    return any(label == wanted or label.startswith(f"{wanted}:") or (wanted.endswith("*") and label.startswith(wanted[:-1]))
               for wanted in provider.prompts)  # fmt: skip


def _prompts_create(project, actor, suite: Suite, suite_name: str, tests: list[TestSpec], endpoints: _Endpoints,
                    report: ImportReport) -> list[tuple]:  # fmt: skip
    """Each prompt as a new prompt of the project at version 1: [(spec, prompt, short name)]."""
    created, taken = [], set()
    for number, spec in enumerate(suite.prompts, start=1):
        provider = next((provider for provider in suite.providers if _allowed(spec, provider)), None)
        if provider is None:
            report.notes.append(f"{spec.where}: no provider runs this prompt (their prompts filters leave it out); not imported.")
            continue
        short = _unique(_slug(spec.label)[:40].strip("-") or f"prompt-{number}", taken)
        variables = _optional_variables(spec, tests)
        try:
            prompt = prompt_services.prompt_create(
                project=project, actor=actor, name=f"{suite_name}-{short}", message=f"Imported from {suite.config_name} ({spec.where})",
                description=f"promptfoo prompt {spec.label[:200]!r} from {spec.where}.", tags=["promptfoo"], kind=spec.kind,
                template=spec.template, messages=spec.messages, endpoint=endpoints[provider], params=spec.params,
                variables=variables, strict_variables=False,
            )  # fmt: skip
        except Invalid as exc:
            raise Invalid(f"{spec.where}: {exc.message}", details={"key": spec.where, **exc.details}) from None
        created.append((spec, prompt, short))
        report.prompts.append((prompt.name, spec.where))
    if not created:
        raise Invalid(f"{suite.config_name}: no prompt is run by any provider.", details={"key": "prompts"})
    return created


def _slug(text: str) -> str:
    """A name part from a label such as "prompts/answer.txt: 2" (prompts-answer-txt-2)."""
    return slugify(re.sub(r"[^\w]+", "-", text))


def _unique(name: str, taken: set) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    taken.add(candidate)
    return candidate


def template_variables(source: str, where: str) -> set[str]:
    """The variables a template uses, or Invalid naming where and the line (an unknown filter,
    such as nunjucks' `dump`, is found here too)."""
    return rendering.variables_of(rendering.parse(source, where), where)


def _optional_variables(spec: PromptSpec, tests: list[TestSpec]) -> list[dict]:
    """Variables the prompt uses that some test does not set: promptfoo renders those as empty
    text, so they are declared optional with "" as default (when every value given is text)."""
    used = set().union(*(template_variables(source, spec.where) for source in spec.sources()))
    declared = []
    for name in sorted(used):
        values = [test.vars[name] for test in tests if name in test.vars]
        if len(values) < len(tests) and all(isinstance(value, str) for value in values):
            declared.append({"name": name, "type": "string", "required": False, "default": ""})
    return declared


class _Rubrics:
    """A rubric prompt per distinct llm-rubric text and judge model."""

    def __init__(self, *, project, actor, suite_name: str, report: ImportReport, config_name: str):
        self.project, self.actor, self.suite_name, self.report, self.config_name = project, actor, suite_name, report, config_name
        self.names: dict[tuple, str] = {}

    def name_for(self, rubric: str, endpoint: ModelEndpoint, where: str) -> str:
        text = rubric_template(rubric)
        if (text, endpoint.pk) not in self.names:
            name = f"{self.suite_name}-rubric-{len(self.names) + 1}"
            prompt_services.prompt_create(
                project=self.project, actor=self.actor, name=name, message=f"Imported from {self.config_name} ({where})",
                description=f"The llm-rubric grader of the promptfoo suite {self.suite_name}.", tags=["promptfoo", "rubric"],
                kind="chat", endpoint=endpoint, params={"temperature": 0},
                messages=[{"role": "system", "content": RUBRIC_SYSTEM},
                          {"role": "user", "content": f"<Output>\n{{{{ output }}}}\n</Output>\n<Rubric>\n{text}\n</Rubric>"}],
            )  # fmt: skip
            self.names[(text, endpoint.pk)] = name
            self.report.prompts.append((name, f"{where} (llm-rubric grader)"))
        return self.names[(text, endpoint.pk)]


def rubric_template(rubric: str) -> str:
    """The rubric with its test variables read from `vars`, as the judge passes them ({{ city }}
    becomes {{ vars.city }}); Unsupported when it uses anything else the judge cannot fill in."""
    if not any(marker in rubric for marker in _TEMPLATE_MARKERS):
        return rubric
    text = _RUBRIC_NAME.sub(lambda match: f"{{{{{match[1]} vars.{match[2]}", rubric)
    try:
        names = template_variables(text, "the rubric")
    except Invalid as exc:
        raise Unsupported(f"its rubric is not a valid template: {exc.message}") from None
    if names - set(JUDGE_VARIABLES):
        raise Unsupported(f"its rubric uses {', '.join(sorted(names - set(JUDGE_VARIABLES)))} outside {{{{ }}}}, which the judge cannot fill in")  # fmt: skip
    return text


# --- Checks: items' assertions and evaluators ----------------------------------------------------------


def _finalize(checks, graders, endpoints: _Endpoints, rubrics: _Rubrics, project, report: ImportReport) -> None:
    """Give model-graded checks their endpoint and rubric, then check every distinct one as it
    would be saved: a check that would be refused is skipped with the reason."""
    verdicts: dict[str, str | None] = {}
    for test_index, test_checks in enumerate(checks):
        for check_index, check in enumerate(test_checks):
            if check.mapped is None:
                continue
            mapped = check.mapped
            try:
                if mapped.grader_use:
                    endpoint = endpoints[graders[(test_index, check_index)]]
                    config = {**mapped.config, "endpoint": endpoint.name}
                    if mapped.rubric is not None:
                        config["rubric"] = rubrics.name_for(mapped.rubric, endpoint, check.assertion.where)
                    mapped = replace(mapped, config=config)
            except Unsupported as exc:
                _skip(check, str(exc), report)
                continue
            check.mapped, check.key = mapped, _key(mapped)
            if check.key not in verdicts:
                try:
                    evaluation_services.evaluator_validate(project=project, kind=mapped.kind, config=mapped.config, weight=mapped.weight, threshold=mapped.threshold)  # fmt: skip
                    verdicts[check.key] = None
                except Invalid as exc:
                    verdicts[check.key] = exc.message
            if verdicts[check.key]:
                _skip(check, verdicts[check.key], report)


def _skip(check: _Check, reason: str, report: ImportReport) -> None:
    report.skipped_asserts.append((check.assertion.where, check.assertion.label(), reason))
    check.mapped, check.key = None, ""


def _key(mapped: Mapped) -> str:
    return json.dumps([mapped.kind, mapped.config, mapped.threshold, mapped.inverted, mapped.weight], sort_keys=True, default=str)


def _shared(tests: list[TestSpec], checks: list[list[_Check]], report: ImportReport) -> int:
    """How many leading checks of each test are defaultTest's and become evaluators attached to
    the experiment: all of them when every test has them, each the same check (the same grading
    model too) and none twice; else 0, and each item carries them as its own."""
    counts = {test.shared for test in tests}
    if counts == {0}:
        return 0
    count = max(counts)
    keys = [check.key for check in checks[0][:count]]
    if len(counts) == 1 and all([check.key for check in mine[:count]] == keys for mine in checks):
        mapped = [key for key in keys if key]
        if len(set(mapped)) == len(mapped):
            return count
    report.notes.append(
        "defaultTest's assertions are checked as each test's own: some tests leave them out (options.disableDefaultAsserts), "
        "grade them with another model, or list one twice, so they cannot be evaluators of every item alike."
    )
    return 0


def _evaluators_create(project, actor, suite_name: str, config_name: str, shared: list[_Check], report: ImportReport) -> dict[str, Evaluator]:  # fmt: skip
    """An evaluator for each of defaultTest's checks, named <suite>-<type>-<n>."""
    created, numbers = {}, defaultdict(int)
    for check in shared:
        if check.mapped is None:
            continue
        base = slugify(check.assertion.base) or "check"
        numbers[base] += 1
        mapped, label = check.mapped, check.assertion.label()
        created[check.key] = evaluation_services.evaluator_create(
            project=project, actor=actor, name=f"{suite_name}-{base}-{numbers[base]}", kind=mapped.kind, message=f"Imported from {config_name}",
            description=f"From the promptfoo suite {suite_name}: {label} (defaultTest: every test).", config=mapped.config,
            weight=mapped.weight, threshold=mapped.threshold, inverted=mapped.inverted,
        )  # fmt: skip
        report.evaluators.append((created[check.key].name, mapped.kind, label))
    return created


# --- Dataset and experiment ----------------------------------------------------------------------


def _item(test: TestSpec, own: list[_Check], shared: list[_Check], evaluators: dict[str, Evaluator]) -> dict:
    """The dataset item of a test: its vars, its own assertions and threshold, and what the export
    shows of it (metadata["promptfoo"]): each assertion as promptfoo writes it, in the item's
    order, and defaultTest's by evaluator name."""
    graded = [check for check in own if check.mapped is not None]
    record = {
        "test": test.where, "description": test.description,
        "asserts": [check.assertion.as_promptfoo() for check in graded],
        "defaults": {evaluators[check.key].name: check.assertion.as_promptfoo() for check in shared if check.mapped is not None},
        "skipped": [check.assertion.as_promptfoo() for check in [*shared, *own] if check.mapped is None],
    }  # fmt: skip
    return {
        "vars": test.vars, "expected": _expected(graded), "metadata": {**test.metadata, "promptfoo": record},
        "assertions": [check.mapped.item_assertion() for check in graded], "threshold": test.threshold,
    }  # fmt: skip


def _expected(graded: list[_Check]) -> str:
    """The answer the test expects, shown beside the item: the text of its first `equals`."""
    return next((check.assertion.value for check in graded if check.assertion.type == "equals" and isinstance(check.assertion.value, str)), "")  # fmt: skip


def _dataset_description(suite: Suite) -> str:
    return f"Tests of the promptfoo suite {suite.description or suite.config_name}, imported from {suite.config_name}."


def _variants(suite: Suite, prompts: list[tuple], endpoints: _Endpoints) -> list[dict]:
    """Every prompt on every provider that runs it, as promptfoo's matrix: provider params,
    then the prompt entry's own config on top (as promptfoo merges them)."""
    variants, taken = [], set()
    for spec, prompt, short in prompts:
        for provider in suite.providers:
            if not _allowed(spec, provider):
                continue
            name = provider.name if len(prompts) == 1 else f"{short} @ {provider.name}"
            variants.append({
                "name": _unique(name[:95], taken), "prompt": prompt, "version": 1, "endpoint": endpoints[provider],
                "params": {**provider.params, **spec.params},
            })  # fmt: skip
    return variants
