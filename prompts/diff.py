"""Readable differences between two prompt versions: words for text, keys for settings."""

import difflib
import json
import re
from dataclasses import dataclass

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class FieldDiff:
    field: str
    segments: list[tuple[str, str]] | None = None  # ("equal" | "delete" | "insert", text), for text
    changes: list[tuple[str, str, str]] | None = None  # (key, before, after), for settings


def words(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level segments turning `before` into `after`."""
    a, b = _TOKENS.findall(before or ""), _TOKENS.findall(after or "")
    segments = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("equal", "delete"):
            segments.append((op, "".join(a[i1:i2])))
        elif op == "insert":
            segments.append((op, "".join(b[j1:j2])))
        else:
            segments += [("delete", "".join(a[i1:i2])), ("insert", "".join(b[j1:j2]))]
    return segments


def keys(before: dict, after: dict) -> list[tuple[str, str, str]]:
    """(key, before, after) for every key that differs; absent values are shown as empty."""
    def show(value):
        return "" if value is None else json.dumps(value, sort_keys=True) if not isinstance(value, str) else value

    names = sorted(set(before or {}) | set(after or {}))
    return [(name, show((before or {}).get(name)), show((after or {}).get(name))) for name in names if (before or {}).get(name) != (after or {}).get(name)]


def version_diff(old, new) -> list[FieldDiff]:
    """What changed from `old` to `new` (two versions, or None for `old` at version 1)."""
    diffs = []
    if old is not None and old.kind != new.kind:
        diffs.append(FieldDiff("kind", changes=[("kind", old.kind, new.kind)]))
    if new.kind == "text" or (old and old.kind == "text"):
        before = old.template if old and old.kind == "text" else ""
        after = new.template if new.kind == "text" else ""
        if before != after:
            diffs.append(FieldDiff("template", segments=words(before, after)))
    old_messages = old.messages if old and old.kind == "chat" else []
    new_messages = new.messages if new.kind == "chat" else []
    for number in range(1, max(len(old_messages), len(new_messages)) + 1):
        before = _message_text(old_messages, number)
        after = _message_text(new_messages, number)
        if before != after:
            diffs.append(FieldDiff(f"message {number}", segments=words(before, after)))
    for field in ("params", "variables", "tags", "description", "strict_variables", "endpoint_id"):
        before, after = (getattr(old, field) if old else None), getattr(new, field)
        if before != after:
            diffs.append(FieldDiff(field, changes=keys(_as_dict(before), _as_dict(after))))
    return diffs


def _message_text(messages: list, number: int) -> str:
    if number > len(messages):
        return ""
    message = messages[number - 1]
    if "placeholder" in message:
        return f"[placeholder: {message['placeholder']}]"
    return f"{message['role']}: {message['content']}"


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) and "name" in item for item in value):
        return {item["name"]: {k: v for k, v in item.items() if k != "name"} for item in value}
    return {"value": value} if value not in (None, "", []) else {}
