"""What higher layers attach to an experiment when it is created, without experiments
importing them.

evaluations registers an attachment named "evaluators" from its AppConfig.ready(); the
experiment form offers it as a field, the create API accepts it as a list of names or ids,
and experiment_create attaches it inside its own transaction, so an experiment never exists
without what it was created with.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
