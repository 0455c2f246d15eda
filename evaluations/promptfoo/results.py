"""An experiment's results as promptfoo reports them, from the runs and their grades (nothing
is called or scored here).

Each run is graded by evaluations.grading, the rule every page, API and gate uses: its checks
are the experiment's evaluators and its item's own assertions; it passes when every check
passes, or, when the item has a threshold, when the weighted score reaches it. A promptfoo
import puts each test's assertions on its item and defaultTest's on the experiment, with each
check scoring as promptfoo scores it, so that grade is promptfoo's. This module only presents
it in promptfoo's terms:

- componentResults: each check's pass (one of weight 0 always passes), score and reason, with
  its assertion as promptfoo writes it (kept by the import in the item's metadata["promptfoo"];
  a check not from promptfoo is shown by its kind);
- namedScores: per metric, the weighted mean of the scores of the checks tagged with it (an
  attached evaluator not from promptfoo reports under its own name);
- failureReason: SUCCESS, ASSERT_FAILURE, or ERROR for a run whose call failed or one of whose
  checks errored (neither a pass nor a failure).

An experiment with nothing to grade its runs has no verdicts in promptlab; promptfoo passes a
test without assertions with score 1, and the export says so.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from evaluations import grading
from evaluations import selectors as evaluation_selectors
from experiments.models import Experiment, Run, RunStatus
from prompts import selectors as prompt_selectors
from promptlab.errors import Invalid

SUCCESS, ASSERT_FAILURE, ERROR = 0, 1, 2  # promptfoo's ResultFailureReason
UNFINISHED = {RunStatus.PENDING, RunStatus.RUNNING}


@dataclass(frozen=True)
class Component:
    """One check's result on one run, as promptfoo reports an assertion's."""

    passed: bool
    score: float
    reason: str
    assertion: dict
    weight: float = 1.0
    metric: str | None = None


@dataclass
class Verdict:
    """The grade of one run (one test on one prompt x provider), in promptfoo's terms."""

    run: Run
    passed: bool = False
    score: float = 0.0
    reason: str = ""
    failure_reason: int = ERROR
    error: str = ""
    components: list[Component] = field(default_factory=list)
    named_scores: dict = field(default_factory=dict)
    complete: bool = True  # False while the run or one of its checks is still to come

    @property
    def record(self) -> dict:
        return (self.run.item.metadata or {}).get("promptfoo") or {}


def experiment_verdicts(*, experiment: Experiment) -> list[Verdict]:
    """Every run's grade in promptfoo's terms, in item, variant and repeat order."""
    grades = {graded.run_id: graded.grade for graded in grading.experiment_grades(experiment)}
    kinds = dict(evaluation_selectors.evaluators_of_experiment(experiment_id=experiment.pk).values_list("name", "kind"))
    runs = experiment.runs.select_related("item", "variant__prompt", "variant__endpoint").order_by("item__row", "variant_id", "repeat")
    verdicts = []
    for run in runs:
        verdict, grade = Verdict(run=run), grades.get(run.pk)
        verdicts.append(verdict)
        if run.status in UNFINISHED:
            verdict.complete, verdict.error = False, f"The run is {run.status}."
            continue
        if grade is None:
            verdict.error = run.error or f"The run was not made ({run.status})."
            continue
        verdict.components = _components(grade.checks, verdict.record, kinds)
        verdict.named_scores = _named_scores(verdict.components)
        if grade.errored or grade.pending:
            verdict.complete = not grade.pending
            verdict.error = run.error if run.status == RunStatus.FAILED and run.error else grade.reason
        elif grade.passed is None:  # nothing grades the experiment's runs
            verdict.passed, verdict.score, verdict.reason, verdict.failure_reason = True, 1.0, "No assertions", SUCCESS
        else:
            verdict.passed, verdict.score, verdict.reason = grade.passed, grade.score, grade.reason
            verdict.failure_reason = SUCCESS if grade.passed else ASSERT_FAILURE
    return verdicts


def _components(checks, record: dict, kinds: dict[str, str]) -> list[Component]:
    """The grade's checks as promptfoo's componentResults: defaultTest's (the experiment's
    evaluators), then the item's own, each with its assertion as promptfoo writes it."""
    own = [check.spec.assertion for check in checks if check.spec.assertion is not None]
    forms = record.get("asserts") or []
    if len(forms) != len(own):  # not imported from promptfoo, or the item's assertions changed since
        forms = [_shown(assertion["kind"], assertion.get("metric")) for assertion in own]
    forms, defaults = iter(forms), record.get("defaults") or {}
    components = []
    for check in checks:
        spec = check.spec
        if spec.assertion is not None:
            assertion, metric = next(forms), spec.assertion.get("metric") or None
        elif spec.name in defaults:
            assertion = defaults[spec.name]
            metric = assertion.get("metric")
        else:  # an evaluator not from promptfoo reports under its name
            assertion, metric = _shown(kinds.get(spec.name, ""), spec.name), spec.name
        if check.status == grading.PENDING:
            score, reason = 0.0, "Not scored yet."
        elif check.value is None:
            score, reason = 0.0, f"Could not be scored: {check.reason}"
        else:
            score, reason = check.value, check.reason
        components.append(Component(check.counts_as_passed, score, reason, assertion, spec.weight, metric))
    return components


def _shown(kind: str, metric: str | None) -> dict:
    return {"type": kind, **({"metric": metric} if metric else {})}


def _named_scores(components: list[Component]) -> dict:
    """promptfoo's namedScores: per metric, the weighted mean of its components' scores."""
    sums, weights = defaultdict(float), defaultdict(float)
    for component in components:
        if component.metric:
            sums[component.metric] += component.score * component.weight
            weights[component.metric] += component.weight
    return {metric: sums[metric] / weights[metric] if weights[metric] > 0 else 0.0 for metric in sums}


# --- promptfoo's JSON output --------------------------------------------------------------------


def provider_id(endpoint) -> str:
    """The endpoint as a promptfoo provider id."""
    model = endpoint.model if endpoint is not None else ""
    return f"openai:chat:{model.removeprefix('openai/')}" if model.startswith("openai/") else model


def _tokens(runs: list[Run]) -> dict:
    prompt = sum(run.prompt_tokens or 0 for run in runs)
    completion = sum(run.completion_tokens or 0 for run in runs)
    cached = sum((run.prompt_tokens or 0) + (run.completion_tokens or 0) for run in runs if run.cached)
    return {"total": prompt + completion, "prompt": prompt, "completion": completion, "cached": cached, "numRequests": len(runs)}


def _sent(run: Run) -> str:
    """The prompt as sent: a single user message's text, else the messages as JSON."""
    messages = run.messages or []
    if len(messages) == 1 and messages[0].get("role") == "user":
        return messages[0].get("content") or ""
    return json.dumps(messages, ensure_ascii=False)


def _result(verdict: Verdict, prompt_index: int) -> dict:
    run, record = verdict.run, verdict.record
    metadata = {key: value for key, value in (run.item.metadata or {}).items() if key != "promptfoo"}
    asserts = [component.assertion for component in verdict.components]
    grading = None
    if run.status == RunStatus.DONE:
        grading = {
            "pass": verdict.passed, "score": verdict.score, "reason": verdict.error or verdict.reason,
            "namedScores": verdict.named_scores, "tokensUsed": _tokens([run]),
            "componentResults": [
                {"pass": c.passed, "score": c.score, "reason": c.reason, "assertion": c.assertion, **({"metric": c.metric} if c.metric else {})}
                for c in verdict.components
            ],
        }  # fmt: skip
    cost = float(run.cost_usd) if run.cost_usd is not None else 0.0
    return {
        "id": f"run-{run.pk}", "description": record.get("description") or None, "promptIdx": prompt_index, "testIdx": run.item.row - 1,
        "testCase": {"description": record.get("description") or None, "vars": run.item.vars, "assert": asserts + record.get("skipped", []),
                     "threshold": run.item.threshold, "metadata": metadata},
        "promptId": f"{run.variant.prompt.name}@v{run.variant.version}",
        "provider": {"id": provider_id(run.variant.endpoint), "label": run.variant.name},
        "prompt": {"raw": _sent(run), "label": run.variant.prompt.name},
        "vars": run.item.vars,
        "response": {"output": run.output, "tokenUsage": _tokens([run]), "cached": run.cached, "cost": cost} if run.status == RunStatus.DONE else None,
        "error": verdict.error or None, "failureReason": verdict.failure_reason, "success": verdict.failure_reason == SUCCESS,
        "score": verdict.score, "latencyMs": round(run.latency_ms or 0), "gradingResult": grading, "namedScores": verdict.named_scores,
        "cost": cost, "metadata": metadata, "tokenUsage": _tokens([run]),
    }  # fmt: skip


def _completed_prompt(variant, verdicts: list[Verdict]) -> dict:
    record = prompt_selectors.prompt_version(prompt=variant.prompt, version=variant.version)
    raw = record.template if record.kind == "text" else json.dumps(record.messages, ensure_ascii=False)
    named, counts = defaultdict(float), defaultdict(int)
    for verdict in verdicts:
        for metric, value in verdict.named_scores.items():
            named[metric] += value
            counts[metric] += 1
    components = [component for verdict in verdicts for component in verdict.components]
    return {
        "id": f"{variant.prompt.name}@v{variant.version}", "raw": raw, "label": variant.prompt.name, "provider": provider_id(variant.endpoint),
        "metrics": {
            "score": sum(verdict.score for verdict in verdicts),
            "testPassCount": sum(verdict.failure_reason == SUCCESS for verdict in verdicts),
            "testFailCount": sum(verdict.failure_reason == ASSERT_FAILURE for verdict in verdicts),
            "testErrorCount": sum(verdict.failure_reason == ERROR for verdict in verdicts),
            "assertPassCount": sum(component.passed for component in components),
            "assertFailCount": sum(not component.passed for component in components),
            "totalLatencyMs": round(sum(verdict.run.latency_ms or 0 for verdict in verdicts)),
            "tokenUsage": _tokens([verdict.run for verdict in verdicts]), "namedScores": dict(named), "namedScoresCount": dict(counts),
            "cost": sum(float(verdict.run.cost_usd or 0) for verdict in verdicts),
        },
    }  # fmt: skip


def promptfoo_results(*, experiment: Experiment, partial: bool = False) -> dict:
    """The experiment in the shape of `promptfoo eval -o results.json`. Refused while runs or
    scores are still to come, unless `partial` (they are then errors saying so)."""
    verdicts = experiment_verdicts(experiment=experiment)
    waiting = [verdict for verdict in verdicts if not verdict.complete]
    if waiting and not partial:
        raise Invalid(
            f"{len(waiting)} of {len(verdicts)} runs of experiment {experiment.pk} have no final result yet (not run, or not "
            "scored): wait until it is finished and scored, or export what there is with --partial.",
            details={"waiting": len(waiting)},
        )
    if not verdicts:
        raise Invalid(f"Experiment {experiment.pk} has no runs: start it first.", details={"experiment": experiment.pk})
    variants = list(experiment.variants.select_related("prompt", "endpoint").order_by("pk"))
    index = {variant.pk: position for position, variant in enumerate(variants)}
    by_variant = defaultdict(list)
    for verdict in verdicts:
        by_variant[verdict.run.variant_id].append(verdict)
    runs = [verdict.run for verdict in verdicts]
    return {
        "evalId": f"promptlab-experiment-{experiment.pk}",
        "results": {
            "version": 3, "timestamp": (experiment.finished_at or timezone.now()).isoformat(),
            "prompts": [_completed_prompt(variant, by_variant[variant.pk]) for variant in variants],
            "results": [_result(verdict, index[verdict.run.variant_id]) for verdict in verdicts],
            "stats": {
                "successes": sum(verdict.failure_reason == SUCCESS for verdict in verdicts),
                "failures": sum(verdict.failure_reason == ASSERT_FAILURE for verdict in verdicts),
                "errors": sum(verdict.failure_reason == ERROR for verdict in verdicts),
                "tokenUsage": _tokens(runs),
            },
        },
        "config": {"description": experiment.name, "promptlab": {"project": experiment.project.slug, "experiment": experiment.pk,
                                                                  "dataset": experiment.dataset.name}},
        "shareableUrl": None,
    }  # fmt: skip
