"""Evaluations' part in an experiment's budget. The judge and embedding calls that score its runs
spend from it like the runs' own calls: each holds the most it can cost before it is made
(experiments.services.budget_reserve, on the score's claim) and settles when the score is
recorded. A budgeted experiment does not start when such a call has no price, and its forecast
counts them. Registered with experiments.extensions in EvaluationsConfig.ready().
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal

from django.db import transaction

from evaluations import grading, kinds, selectors
from evaluations.kinds import RunContext, ScoreError
from evaluations.kinds.base import user_input
from evaluations.models import Score, ScoreStatus
from experiments import services as experiments
from experiments.extensions import ForecastPart, PlannedRun
from experiments.models import Experiment, Run
from promptlab import dispatch
from promptlab.errors import DomainError
from promptlab.llm.estimates import USD_STEP, CallEstimate

SCORE_BUDGET_WAIT_SECONDS = 60  # a score waits this long for calls in flight to settle, then errors to be tried again


class BudgetRefused(Exception):
    """The scoring call was not made: the budget cannot hold it, now (retryable) or at all."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.message, self.retryable = message, retryable


def score_hold(*, claim: Score, run: Run, evaluator, context: RunContext) -> None:
    """Hold the most this evaluator's call on the run can cost against its experiment's budget,
    on the score's claim (claim.reserved_usd, which recording the score settles); BudgetRefused
    when it does not fit. Kinds that call no model, and experiments without a budget, hold nothing."""
    if run.experiment.budget_usd is None:
        return
    estimator = _estimator(evaluator.kind, evaluator.config, project_id=run.experiment.project_id)
    if estimator is None:
        return
    estimate = estimator(context)
    if estimate.usd is None:
        raise BudgetRefused(f"The experiment has a budget, and {estimate.problem}.", retryable=False)
    hold = experiments.budget_reserve(
        experiment_id=run.experiment_id, amount=estimate.usd, wait_s=SCORE_BUDGET_WAIT_SECONDS,
        holder=Score.objects.filter(pk=claim.pk, status=ScoreStatus.PENDING, attempts=claim.attempts),
    )  # fmt: skip
    if hold is experiments.Hold.SPENT:
        raise BudgetRefused(experiments.budget_reached(estimate.usd), retryable=False)
    if hold is not experiments.Hold.HELD:
        busy = "Calls in flight hold what is left of the experiment's budget: the score is tried again later."
        raise BudgetRefused(busy, retryable=True)
    claim.reserved_usd = estimate.usd


@transaction.atomic
def budget_scores_reopen(*, experiment_id: int) -> int:
    """Score again, in the background, the scores that errored because the budget was reached
    (experiment_resume asks, through experiments.signals, once the budget may have been raised).
    Returns how many."""
    from evaluations import tasks

    errored = Score.objects.filter(run__experiment_id=experiment_id, status=ScoreStatus.ERRORED, error_kind="budget")
    reopened = errored.update(retryable=True)
    if reopened:
        dispatch.send_on_commit(tasks.rescore_experiment, experiment_id, None, False)
    return reopened


def start_problems(experiment: Experiment) -> list[str]:
    """With a budget, every judge and embedding call that will score the runs needs a price and a
    longest answer, so that each can be held: those of the experiment's evaluators and of its
    items' own assertions."""
    if experiment.budget_usd is None:
        return []
    sample = RunContext(run_id=0, project_id=experiment.project_id, output="")
    problems = []
    for where, kind, config in _scorers(experiment):
        try:
            estimator = _estimator(kind, config, project_id=experiment.project_id)
            problem = estimator(sample).problem if estimator else None
        except (ScoreError, DomainError):
            continue  # it errors when it scores (its rubric is gone, say) without a call
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def scoring_forecast(*, dataset, planned: list[PlannedRun], experiment: Experiment | None, attach: dict) -> ForecastPart | None:
    """The judge and embedding calls that will score the planned runs, and the most they can
    cost: each call's prompt as it would be sent for the item, plus the run's forecast answer
    (a judge reads it, an embedding embeds it), and its own answer at its cap."""
    if experiment is not None and experiment.pk:
        evaluators = list(selectors.evaluators_of_experiment(experiment_id=experiment.pk))
    else:
        evaluators = [evaluator for evaluator in attach.get("evaluators", []) if evaluator.enabled]
    estimators: dict[tuple, Callable | None] = {}  # by kind and config: a rubric is read once per forecast
    calls, usd, unpriced = Counter(), Decimal(0), {}
    for plan in planned:
        item = plan.item
        context = RunContext(
            run_id=0, project_id=dataset.project_id, output="", expected=item.expected, vars=item.vars or {},
            metadata=item.metadata or {}, input=user_input(plan.messages),
        )  # fmt: skip
        scorers = [(f"evaluator {evaluator.name!r}", evaluator.kind, evaluator.config) for evaluator in evaluators]
        scorers += [
            (f"row {item.row}: its {assertion['kind']} assertion", assertion["kind"], assertion["config"])
            for assertion in item.assertions or []
        ]
        for where, kind, config in scorers:
            key = (kind, json.dumps(config, sort_keys=True))
            try:
                if key not in estimators:
                    estimators[key] = _estimator(kind, config, project_id=dataset.project_id)
                estimate = estimators[key] and estimators[key](context)
            except (ScoreError, DomainError):
                estimators.setdefault(key, None)
                continue  # no call: it errors when it scores
            if not estimate:
                continue
            estimate = replace(estimate, prompt_tokens=estimate.prompt_tokens + plan.answer_tokens)
            calls[getattr(kinds.get(kind), "call_name", kind)] += plan.runs
            if estimate.usd is None:
                unpriced.setdefault(where, f"{where}: {estimate.problem}")
            else:
                usd += estimate.usd * Decimal(str(plan.runs))
    if not calls:
        return None
    counted = {name: round(count) for name, count in sorted(calls.items())}
    summary = " and ".join(f"{count} {name} calls" for name, count in counted.items())
    return ForecastPart(
        name="scoring", calls=sum(counted.values()), summary=summary, usd=None if unpriced else usd.quantize(USD_STEP),
        unpriced=tuple(unpriced.values()),
    )  # fmt: skip


def _estimator(kind: str, config: dict, *, project_id: int) -> Callable[[RunContext], CallEstimate] | None:
    """The kind's estimator of one scoring call with this config; None for kinds that call no model."""
    estimator = getattr(kinds.get(kind), "estimator", None)
    return estimator(config, project_id=project_id) if estimator else None


def _scorers(experiment: Experiment) -> Iterator[tuple[str, str, dict]]:
    """(where, kind, config) of what scores the runs: the enabled evaluators, then each distinct
    assertion of the items, named by the first row that has it."""
    for evaluator in selectors.evaluators_of_experiment(experiment_id=experiment.pk):
        yield f"evaluator {evaluator.name!r}", evaluator.kind, evaluator.config
    seen = set()
    items = experiment.dataset.items.exclude(assertions=[]).order_by("row").values_list("row", "assertions")
    for row, assertions in items.iterator(chunk_size=2000):
        for assertion in assertions:
            if (name := grading.inline_name(assertion)) not in seen:
                seen.add(name)
                yield f"row {row}: its {assertion['kind']} assertion", assertion["kind"], assertion["config"]
