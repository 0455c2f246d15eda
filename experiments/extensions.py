"""What higher layers attach to an experiment when it is created, without experiments
importing them.

evaluations registers an attachment named "evaluators" from its AppConfig.ready(); the
experiment form offers it as a field, the create API accepts it as a list of names or ids,
and experiment_create attaches it inside its own transaction, so an experiment never exists
without what it was created with.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from promptlab.errors import Invalid


@dataclass(frozen=True)
class Attachment:
    name: str  # the key in the form and in the create API's body, e.g. "evaluators"
    label: str
    help_text: str
    choices: Callable[..., QuerySet]  # (project) -> what the form offers
    resolve: Callable[..., list]  # (project, refs: names or ids) -> objects; Invalid names the unknown ones
    attach: Callable[..., None]  # (experiment, actor, objects) inside experiment_create's transaction


_attachments: dict[str, Attachment] = {}


def register_attachment(attachment: Attachment) -> None:
    _attachments[attachment.name] = attachment


def attachments() -> list[Attachment]:
    return sorted(_attachments.values(), key=lambda attachment: attachment.name)


def attach_all(*, experiment, actor, given: dict[str, Iterable]) -> None:
    """Attach what was given, by attachment name; an unknown name is refused."""
    if unknown := sorted(set(given) - set(_attachments)):
        raise Invalid(f"Experiments take no {', '.join(map(repr, unknown))}.", details={"unknown": unknown})
    for name, objects in given.items():
        _attachments[name].attach(experiment=experiment, actor=actor, objects=list(objects))


# --- Items' own assertions -----------------------------------------------------------------
# A dataset item may carry assertions (as a promptfoo test does). What a valid one is depends on
# the evaluator kinds, which live in evaluations: it registers the check at start-up, and every
# write of items (import, page, API) normalizes through `item_assertions_normalize`.

_assertions_check: Callable[..., list[dict]] | None = None


def register_assertions_check(check: Callable[..., list[dict]]) -> None:
    """check(project, assertions, where) -> the normalized list, or Invalid naming the path
    (`where`, e.g. "row 3: assert[1]") and the problem."""
    global _assertions_check
    _assertions_check = check


def item_assertions_normalize(*, project, assertions, where: str) -> list[dict]:
    if not assertions:
        return []
    if _assertions_check is None:
        raise Invalid(f"{where}: items cannot carry assertions: no evaluator kinds are installed.")
    return _assertions_check(project, assertions, where)


# promptfoo's way of writing an assertion ({type, value} objects, `__expected` cells) is known to
# evaluations.promptfoo, which registers a reader for it; dataset imports and exports use it.


@dataclass(frozen=True)
class AssertionReader:
    # (text, where, threshold) -> the assertion of a CSV `__expected` cell in promptlab's shape, or Invalid
    # naming `where` and why; threshold: the cell's own (promptfoo's __config:__expected<N>:threshold) or None
    from_cell: Callable[[str, str, float | None], dict]
    # (raw, where) -> the same for an assertion object of promptfoo's shape ({type, value, ...})
    from_dict: Callable[[dict, str], dict]
    # (assertion, project) -> the cell that reads back as exactly this (normalized) assertion, or None
    to_cell: Callable[..., str | None]


_assertion_reader: AssertionReader | None = None


def register_assertion_reader(reader: AssertionReader) -> None:
    global _assertion_reader
    _assertion_reader = reader


def assertion_reader() -> AssertionReader | None:
    return _assertion_reader


# --- Scores still to come ------------------------------------------------------------------
# An experiment whose calls are all made is "scoring" until its answered runs are scored, then
# "finished". Which runs still wait for a score is the grading rule's to say, in evaluations: it
# registers these questions at start-up; experiments asks them to move an experiment between
# the two states and to show how far scoring has come.


@dataclass(frozen=True)
class ScoringProgress:
    scored: int  # answered runs whose scores are all in (an errored score is in: the run is errored)
    to_score: int  # answered runs (done): those there is something to score on
    grades: bool  # False when nothing (no evaluator, no item assertion) scores the runs

    @property
    def pending(self) -> int:
        return self.to_score - self.scored


@dataclass(frozen=True)
class Scoring:
    to_come: Callable[..., bool]  # (experiment) -> whether an answered run waits for a score; cheap enough to ask after each score
    progress: Callable[..., ScoringProgress]  # (experiment) -> runs scored out of runs answered


_scoring: Scoring | None = None


def register_scoring(scoring: Scoring) -> None:
    global _scoring
    _scoring = scoring


def scores_to_come(experiment) -> bool:
    """Without evaluations nothing scores a run, so nothing is ever to come."""
    return _scoring is not None and _scoring.to_come(experiment)


def scoring_progress(experiment) -> ScoringProgress:
    return _scoring.progress(experiment) if _scoring is not None else ScoringProgress(scored=0, to_score=0, grades=False)


# --- Budgets ---------------------------------------------------------------------------------
# An experiment's budget holds every call made for it: its runs', and those higher layers make
# for its runs (evaluations' judges and embeddings). Those layers say here what refuses a start
# and what they add to the forecast; experiment_start and variants_forecast ask them.


@dataclass(frozen=True)
class PlannedRun:
    """One sampled cell of a forecast, an item on a variant: what acting on its runs would see."""

    item: object  # the DatasetItem
    messages: list[dict]  # the rendered messages its runs send
    answer_tokens: int  # the forecast length of their answers
    runs: float  # how many runs it stands for: repeats x (items in the dataset / items sampled)


@dataclass(frozen=True)
class ForecastPart:
    """What a higher layer adds to an experiment's forecast, e.g. scoring: "20 judge calls"."""

    name: str
    calls: int
    summary: str
    usd: Decimal | None  # None when a price is unknown: `unpriced` says which
    unpriced: tuple[str, ...] = ()


_start_checks: dict[str, Callable[..., list[str]]] = {}
_forecasts: dict[str, Callable[..., ForecastPart | None]] = {}


def register_start_check(name: str, check: Callable[..., list[str]]) -> None:
    """check(experiment) -> the problems that refuse its start (empty when none), asked inside
    experiment_start's transaction before any run is created."""
    _start_checks[name] = check


def start_problems(experiment) -> list[str]:
    return [problem for _, check in sorted(_start_checks.items()) for problem in check(experiment)]


def register_forecast(name: str, part: Callable[..., ForecastPart | None]) -> None:
    """part(dataset, planned: list[PlannedRun], experiment or None, attach: what a draft would be
    created with, by attachment name) -> ForecastPart, or None when it adds nothing."""
    _forecasts[name] = part


def forecast_parts(*, dataset, planned: list[PlannedRun], experiment, attach: dict) -> list[ForecastPart]:
    parts = []
    for _, part in sorted(_forecasts.items()):
        if (added := part(dataset=dataset, planned=planned, experiment=experiment, attach=attach)) is not None:
            parts.append(added)
    return parts
