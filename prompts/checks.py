"""What may refuse a label move: checks that higher layers register at start-up.

prompts never imports the layers above it, yet a move of `production` may need an approval
(evaluations.governance) or a passing gate experiment (evaluations). Each registers a check
here from its AppConfig.ready(); label_move runs them all, in order, inside its transaction.

A check is called with the move's keywords (prompt, label, version, actor, override_reason,
rollback). `rollback` is true only for label_rollback, which has checked that the move undoes
the label's last move and nothing more: a check may trust it. A check refuses the move by
raising a DomainError, or returns a line for the move's record (e.g. "Gate passed: ...") or None.
"""

from collections.abc import Callable
from dataclasses import dataclass

# Checks run by ascending order: policy first (may this move happen here at all?), then
# evidence (does the version deserve it?), so a refused move records no gate decision.
POLICY = 10
EVIDENCE = 20


@dataclass(frozen=True)
class LabelMoveCheck:
    name: str
    check: Callable[..., str | None]
    order: int


_checks: dict[str, LabelMoveCheck] = {}


def register_label_move_check(name: str, check: Callable[..., str | None], *, order: int) -> None:
    """Add (or replace, by name) a check; registering the same check twice keeps one."""
    _checks[name] = LabelMoveCheck(name=name, check=check, order=order)


def label_move_checks() -> list[LabelMoveCheck]:
    """The registered checks in the order label_move runs them."""
    return sorted(_checks.values(), key=lambda entry: (entry.order, entry.name))


def label_move_notes(**move) -> list[str]:
    """Run every check on the move; the first refusal propagates. Returns the checks' notes."""
    notes = (entry.check(**move) for entry in label_move_checks())
    return [note for note in notes if note]
