"""Regular expressions written by users (regex evaluators, dataset items' regex assertions).

The syntax is Python's `re`: `re` checks a pattern, so what is accepted and the error messages
are exactly re's. The `regex` module runs it, because its search takes a timeout: a pattern
such as `(a+)+$` backtracks for hours on a long output, and `re` cannot be interrupted.
"""

import re

import regex
from django.conf import settings

from promptlab.errors import DomainError, Invalid


class PatternTimeout(DomainError):
    """A search ran past USER_REGEX_TIMEOUT_SECONDS. Permanent: the same pattern on the same
    text would take as long again."""

    code = "regex_timeout"


class UserPattern:
    """A compiled user pattern and how errors show it (as its author wrote it)."""

    def __init__(self, compiled: regex.Pattern, shown: str):
        self.compiled, self.shown = compiled, shown

    def search(self, text: str) -> regex.Match | None:
        """The first match anywhere in the text, or PatternTimeout when the search runs too long."""
        timeout = settings.USER_REGEX_TIMEOUT_SECONDS
        try:
            return self.compiled.search(text, timeout=timeout)
        except TimeoutError:
            raise PatternTimeout(
                f"The pattern {self.shown!r} took longer than {timeout:g}s on this output; simplify it "
                "(a repeat inside a repeat, such as (a+)+, can backtrack exponentially)."
            ) from None


def compile_user_pattern(pattern: str, flags: int = 0, *, shown: str | None = None) -> UserPattern:
    """The pattern compiled, or Invalid with re's message and position. `shown` is how errors
    name it (as its author wrote it, when `pattern` is a translation), else the pattern itself."""
    shown = pattern if shown is None else shown
    try:
        re.compile(pattern, flags)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise Invalid(f"Invalid regular expression {shown!r}: {exc.msg}{where}") from None
    return UserPattern(regex.compile(pattern, flags), shown)
