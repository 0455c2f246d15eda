"""How people and clients name a version when they type one: "v3", "V3" and "3" all mean
version 3, and anything else names a label ("production", "staging", "latest").

Every form field, query parameter, API field and page that takes a version or a label reads
it here, so "v3" typed where a label is asked for never looks for a label named "v3" (and
label_move refuses such a name: it could never be asked for).
"""

import re

from promptlab.errors import Invalid

MAX_VERSION = 2**31 - 1  # versions are stored as PositiveIntegerField

_NUMBER = re.compile(r"[vV]?(-?[0-9]+)")


def version_ref(text: str) -> int | None:
    """The version number `text` names ("v3", "V3", "3" -> 3), or None when it names a
    label. Invalid, saying why, for a number that is no version ("v0", "-1")."""
    text = text.strip()
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    # The length check first: int() of thousands of digits is slow, and refused by Python past 4,300.
    if digits.startswith("-") or len(digits.lstrip("0")) > len(str(MAX_VERSION)) or not 1 <= int(digits) <= MAX_VERSION:
        raise Invalid(f"{text[:40]!r} is not a version: versions are numbered from 1 (v1, v2, ...).", details={"version": text[:40]})
    return int(digits)


def reads_as_version(text: str) -> bool:
    """Whether `text` is typed as a version number (a label may not be named so)."""
    return _NUMBER.fullmatch(text.strip()) is not None


def version_or_label(text: str) -> dict:
    """{"version": n} for a version, else {"label": the text}: the pin selectors.prompt_version takes."""
    number = version_ref(text)
    return {"version": number} if number is not None else {"label": text.strip()}
