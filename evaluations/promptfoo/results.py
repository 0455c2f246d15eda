"""An experiment's results as promptfoo reports them, from the runs and their scores (nothing
is called or scored here).

A test (one run) is graded by its own assertions only: the evaluators its dataset item lists in
metadata["promptfoo"]["asserts"] (an item without that list, from a suite not imported from
promptfoo, is graded by every enabled evaluator of the experiment). As in promptfoo:

- each assertion has a score (levenshtein's is 1 or 0, similar's the similarity, llm-rubric's
  the judge's score, the others 1 or 0) and passes or fails; one of weight 0 always passes;
- the test's score is the weighted mean of its assertions' scores (0 when the weights sum to 0,
  1 with no assertions);
- the test passes when every assertion passes, or, when the test has a threshold, when its
  score is at least the threshold;
- named scores: per metric, the weighted mean of the scores of the assertions tagged with it.

A run whose call failed, or one of whose scores errored, is an error (promptfoo's failureReason
2), neither a pass nor a failure.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from evaluations import selectors as evaluation_selectors
from experiments.models import Experiment, Run, RunStatus
from prompts import selectors as prompt_selectors
from promptlab.errors import Invalid

SUCCESS, ASSERT_FAILURE, ERROR = 0, 1, 2  # promptfoo's ResultFailureReason
BINARY_SCORE_KINDS = {"levenshtein"}  # promptfoo scores these 1 or 0 where promptlab keeps a similarity
UNFINISHED = {RunStatus.PENDING, RunStatus.RUNNING}


@dataclass(frozen=True)
class Component:
    """One assertion's result on one run."""

    passed: bool
    score: float
    reason: str
    assertion: dict
    weight: float = 1.0
    metric: str | None = None
    errored: bool = False
    scored: bool = True


@dataclass
class Verdict:
    """promptfoo's verdict on one run (one test on one prompt x provider)."""

    run: Run
    passed: bool = False
    score: float = 0.0
    reason: str = ""
    failure_reason: int = ERROR
    error: str = ""
    components: list[Component] = field(default_factory=list)
    named_scores: dict = field(default_factory=dict)
    complete: bool = True  # False while the run or one of its scores is still to come

    @property
    def record(self) -> dict:
        return (self.run.item.metadata or {}).get("promptfoo") or {}


def grade_test(components: list[Component], threshold: float | None) -> tuple[bool, float, str, dict]:
    """(passed, score, reason, named scores) of a test from its assertions, as promptfoo's
    AssertionsResult computes them."""
    if not components:
        return True, 1.0, "No assertions", {}
    total_weight = sum(component.weight for component in components)
    score = sum(component.score * component.weight for component in components) / total_weight if total_weight > 0 else 0.0
    failed = [component for component in components if not component.passed]
    passed, reason = not failed, failed[-1].reason if failed else "All assertions passed"
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        passed = score >= threshold
        reason = f"Aggregate score {score:.2f} {'≥' if passed else '<'} {threshold:g} threshold"
    sums, weights = defaultdict(float), defaultdict(float)
    for component in components:
        if component.metric:
            sums[component.metric] += component.score * component.weight
            weights[component.metric] += component.weight
    named = {metric: sums[metric] / weights[metric] if weights[metric] > 0 else 0.0 for metric in sums}
    return passed, score, reason, named


def _component(entry: dict, row: dict | None, kind: str) -> Component:
    weight, assertion, metric = float(entry.get("weight", 1)), entry.get("assertion") or {}, entry.get("metric")
    if row is None:
        return Component(False, 0.0, "Not scored yet.", assertion, weight, metric, errored=True, scored=False)
    if row["errored"]:
        return Component(False, 0.0, f"Could not be scored: {row['reason']}", assertion, weight, metric, errored=True)
    score = (1.0 if row["passed"] else 0.0) if kind in BINARY_SCORE_KINDS else float(row["value"])
    return Component(bool(row["passed"]) or weight == 0, score, row["reason"], assertion, weight, metric)


def experiment_verdicts(*, experiment: Experiment) -> list[Verdict]:
    """promptfoo's verdict on every run of the experiment, in item, variant and repeat order."""
    enabled = list(evaluation_selectors.evaluators_of_experiment(experiment_id=experiment.pk))
    kinds = dict(evaluation_selectors.evaluator_list(project=experiment.project).values_list("name", "kind"))
    scores = {(row["run_id"], row["evaluator_name"]): row for row in evaluation_selectors.experiment_score_rows(experiment=experiment)}
    runs = experiment.runs.select_related("item", "variant__prompt", "variant__endpoint").order_by("item__row", "variant_id", "repeat")
    verdicts = []
    for run in runs:
        verdict = Verdict(run=run)
        verdicts.append(verdict)
        if run.status in UNFINISHED:
            verdict.complete, verdict.error = False, f"The run is {run.status}."
            continue
        if run.status != RunStatus.DONE:
            verdict.error = run.error or f"The run was not made ({run.status})."
            continue
        record = verdict.record
        entries = record.get("asserts")
        if entries is None:  # not imported from promptfoo: every evaluator is the test's
            entries = [{"evaluator": e.name, "assertion": {"type": e.kind, "metric": e.name}, "weight": e.weight, "metric": e.name} for e in enabled]  # fmt: skip
        verdict.components = [_component(entry, scores.get((run.pk, entry["evaluator"])), kinds.get(entry["evaluator"], "")) for entry in entries]  # fmt: skip
        verdict.passed, verdict.score, verdict.reason, verdict.named_scores = grade_test(verdict.components, record.get("threshold"))
        verdict.complete = all(component.scored for component in verdict.components)
        errors = [component.reason for component in verdict.components if component.errored]
        if errors:
            verdict.passed, verdict.score, verdict.error = False, 0.0, " ".join(errors)
        else:
            verdict.failure_reason = SUCCESS if verdict.passed else ASSERT_FAILURE
    return verdicts


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
    own = [component.assertion for component in verdict.components]
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
        "testCase": {"description": record.get("description") or None, "vars": run.item.vars, "assert": own + record.get("skipped", []),
                     "threshold": record.get("threshold"), "metadata": metadata},
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
