"""What the database cannot store of a parsed JSON value: PostgreSQL's text and jsonb refuse
NUL characters and unpaired surrogates, and JSON has no infinity (Python reads 1e999 as one).
Request bodies and imported dataset items are checked here before they reach a row."""

import math


def no_constant(name: str):
    """json.loads's parse_constant: NaN and Infinity are not JSON, and nothing can store them."""
    raise ValueError(f"{name} is not a JSON value")


MAX_DEPTH = 64  # deeper is refused before this check (or a later json.dumps) runs out of stack


def unstorable(value, depth: int = 0) -> str | None:
    """What in the value cannot be stored, in words that follow "contains" (e.g. "a NUL
    character (\\u0000)"), or None. `depth` is the value's own depth, for the recursion."""
    if depth > MAX_DEPTH:
        return f"values nested more than {MAX_DEPTH} deep"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number too large (it reads as infinity)"
    if isinstance(value, str):
        if "\x00" in value:
            return "a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "an unpaired surrogate (\\ud800-\\udfff)"
        return None
    parts = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return next(filter(None, (unstorable(part, depth + 1) for part in parts)), None)
