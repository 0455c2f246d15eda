"""Datasets: create one, import items from CSV or JSONL, export them, and find the items that
lack a variable a prompt needs.

File formats
------------
CSV: UTF-8 (a BOM is allowed), a header row, then one item per row. By default a column named
``expected`` is the expected output, a column ``meta.<key>`` is the metadata key ``<key>``, a
column ``vars.<name>`` is the variable ``<name>`` (for names that would otherwise clash), and
every other column is a variable. Values stay strings. Blank lines are skipped.

JSONL: UTF-8, one JSON object per line; blank lines are skipped. A line with the key ``vars``
is an item as export writes it: ``{"vars": {...}, "expected": "...", "metadata": {...}}``
(``expected`` and ``metadata`` optional, no other keys). Any other object is flat and its
keys are read like CSV columns, with the same mapping; its values keep their JSON types
except the expected output, which must be a string (or null for none).

Mapping: ``{"question": "vars.q", "answer": "expected", "source": "metadata.source",
"notes": None}`` sends a file column to a variable, the expected output or a metadata key,
or ignores it (None); columns it does not name follow the default rules. A column the
mapping names must be in the file's header (CSV) or in every flat object (JSONL).

Import is all or nothing and streams: the file is read a line at a time and items are saved
in batches inside one transaction; any problem rolls all of it back, and the error lists up
to 20 problems, each with its row and line and, where it applies, its column.
"""

import codecs
import csv
import json
from dataclasses import dataclass
from pathlib import PurePath

import structlog
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from experiments.models import Dataset, DatasetItem, Run
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import Invalid, NotFound
from promptlab.json_values import no_constant, unstorable

logger = structlog.get_logger(__name__)

# TODO: move to settings (env DATASET_IMPORT_MAX_BYTES) once settings.py has a datasets section.
DATASET_IMPORT_MAX_BYTES = 200 * 1024 * 1024
DATASET_IMPORT_MAX_ROWS = 1_000_000
# One physical line is held in memory at a time; this keeps that bounded too.
DATASET_IMPORT_MAX_LINE_BYTES = 10 * 1024 * 1024
MAX_PROBLEMS = 20
BATCH_SIZE = 1000
EXPORT_CHUNK_SIZE = 2000
FORMATS = ("csv", "jsonl")
TARGETS_HELP = "vars.<name>, expected, metadata.<key>, or nothing to ignore the column"


# --- Create and look up ----------------------------------------------------------------------


@transaction.atomic
def dataset_create(*, project: Project, actor, name: str, description: str = "") -> Dataset:
    """Create an empty dataset; its name is a slug, unique in the project."""
    authorize(actor, project, Action.EDIT)
    name = name.strip()
    max_length = Dataset._meta.get_field("name").max_length
    try:
        validate_slug(name)
    except ValidationError:
        raise Invalid(
            f"{name!r} is not a valid dataset name: use letters, numbers, hyphens and underscores.",
            details={"name": name},
        ) from None
    if len(name) > max_length:
        raise Invalid(f"A dataset name has at most {max_length} characters.", details={"name": name})
    taken = Invalid(f"The project {project.slug} already has a dataset named {name!r}.", details={"name": name})
    if Dataset.objects.filter(project=project, name=name).exists():
        raise taken
    try:
        with transaction.atomic():
            dataset = Dataset(project=project, name=name, description=description)
            dataset._history_user, dataset._change_reason = actor, "Created"
            dataset.save()
    except IntegrityError:  # created concurrently since the check above
        raise taken from None
    logger.info("experiments.dataset_created", dataset_id=dataset.pk, project_id=project.pk)
    return dataset


def dataset_get(*, project: Project, name: str) -> Dataset:
    dataset = Dataset.objects.filter(project=project, name=name).first()
    if dataset is None:
        raise NotFound(f"The project {project.slug} has no dataset named {name!r}.", details={"dataset": name})
    return dataset


# --- Import ----------------------------------------------------------------------------------


@dataclass
class Problem:
    text: str
    row: int | None = None  # CSV data row, 1-based
    line: int | None = None  # physical line of the file, 1-based
    column: str | None = None

    def __str__(self):
        place = f"row {self.row} (line {self.line})" if self.row else f"line {self.line}" if self.line else ""
        if self.column is not None:
            place = f"{place}, column {self.column!r}" if place else f"column {self.column!r}"
        return f"{place}: {self.text}" if place else self.text


class _Stop(Exception):
    """Enough problems to report, or one after which reading on makes no sense."""


class _Problems(list):
    def add(self, problem: Problem) -> None:
        self.append(problem)
        if len(self) >= MAX_PROBLEMS:
            raise _Stop

    def fatal(self, problem: Problem) -> None:
        self.append(problem)
        raise _Stop


@transaction.atomic
def dataset_import(*, dataset: Dataset, actor, file, format: str, mapping: dict | None = None, replace: bool = False) -> int:
    """Add the items of a CSV or JSONL file (a binary file object), all or nothing; return how
    many were added. With `replace`, the dataset's items are replaced, numbered from 1."""
    authorize(actor, dataset.project, Action.EDIT)
    if format not in FORMATS:
        raise Invalid(f"{format!r} is not a dataset format: use csv or jsonl.", details={"format": format})
    targets = _parse_mapping(mapping or {})
    size = _size(file)
    if size is not None and size > DATASET_IMPORT_MAX_BYTES:
        raise _nothing_imported([Problem(_too_large())])

    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)  # one import at a time per dataset
    if replace:
        if Run.objects.filter(item__dataset=dataset).exists():
            raise Invalid(
                f"The dataset {dataset.name} has experiment runs; replacing its items would delete them. "
                "Import into a new dataset instead.",
                details={"dataset": dataset.name},
            )
        _items_delete(dataset)
        first_row = 1
    else:
        first_row = (dataset.items.aggregate(last=Max("row"))["last"] or 0) + 1

    problems = _Problems()
    lines = _Lines(file)
    items = _csv_items(lines, targets, problems) if format == "csv" else _jsonl_items(lines, targets, problems)
    added, batch = 0, []
    try:
        for vars, expected, metadata in items:
            if problems:
                continue  # nothing will be saved: only look for more problems
            row = first_row + added
            batch.append(DatasetItem(dataset_id=dataset.pk, row=row, vars=vars, expected=expected, metadata=metadata))
            added += 1
            if len(batch) == BATCH_SIZE:
                DatasetItem.objects.bulk_create(batch)
                batch = []
    except _Stop:
        pass
    if problems:
        raise _nothing_imported(problems)  # rolls back everything saved above
    DatasetItem.objects.bulk_create(batch)
    # The items are not versioned; the import is recorded in the dataset's history (under the lock taken above).
    dataset._history_user = actor
    dataset._change_reason = f"{'Replaced the items with' if replace else 'Added'} {added} items ({format})"
    dataset.save()
    logger.info("experiments.dataset_imported", dataset_id=dataset.pk, items=added, format=format, replace=replace)
    return added


def _nothing_imported(problems: list[Problem]) -> Invalid:
    if len(problems) == 1:
        message = f"Nothing was imported: {problems[0]}"
    else:
        stopped = f"stopped after {len(problems)} problems" if len(problems) >= MAX_PROBLEMS else f"{len(problems)} problems"
        message = f"Nothing was imported: {stopped}:\n" + "\n".join(f"- {problem}" for problem in problems)
    details = [{"row": p.row, "line": p.line, "column": p.column, "message": p.text} for p in problems]
    return Invalid(message, details={"problems": details})


def _too_large() -> str:
    return f"the file is larger than the limit of {DATASET_IMPORT_MAX_BYTES // (1024 * 1024)} MB."


def _size(file) -> int | None:
    """The bytes left to read, when the file can tell without reading."""
    try:
        if not file.seekable():
            return None
        here = file.tell()
        end = file.seek(0, 2)
        file.seek(here)
        return end - here
    except (AttributeError, OSError):
        return None


def _items_delete(dataset: Dataset) -> None:
    # In slices: QuerySet.delete() loads every instance it deletes.
    while ids := list(dataset.items.values_list("pk", flat=True)[:BATCH_SIZE]):
        DatasetItem.objects.filter(pk__in=ids).delete()


# Where a column goes: ("vars", name), ("expected", ""), ("metadata", key), or None (ignored).
Target = tuple[str, str] | None


def _parse_mapping(mapping: dict) -> dict[str, Target]:
    targets, problems = {}, []
    for column, target in mapping.items():
        if target is None or target == "":
            targets[column] = None
        elif target == "expected":
            targets[column] = ("expected", "")
        elif isinstance(target, str) and target.startswith(("vars.", "metadata.", "meta.")) and target.partition(".")[2]:
            kind, _, key = target.partition(".")
            targets[column] = ("vars" if kind == "vars" else "metadata", key)
        else:
            problems.append(f"{column!r} -> {target!r}")
    if problems:
        raise Invalid(
            f"The mapping has targets it does not know ({'; '.join(problems)}): use {TARGETS_HELP}.",
            details={"mapping": mapping},
        )
    return targets


FORMAT_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_from_name(filename: str) -> str | None:
    """The format a file name's extension says (csv or jsonl), or None."""
    return FORMAT_EXTENSIONS.get(PurePath(filename).suffix.lower())


def mapping_from_lines(lines) -> dict[str, str | None]:
    """The mapping that `COLUMN=TARGET` lines mean (an empty TARGET ignores the column), as
    `import_dataset --map` and the upload form take it. Raises Invalid naming a malformed line."""
    mapping = {}
    for pair in lines:
        column, equals, target = (part.strip() for part in pair.rpartition("="))
        if not equals or not column:
            raise Invalid(f"{pair!r} is not COLUMN=TARGET, where TARGET is {TARGETS_HELP}.", details={"mapping": pair})
        if column in mapping:
            raise Invalid(f"{pair!r}: the column {column!r} is mapped twice.", details={"mapping": pair})
        mapping[column] = target or None
    return mapping


def _target(column: str, targets: dict[str, Target]) -> Target:
    if column in targets:
        return targets[column]
    if column == "expected":
        return ("expected", "")
    for prefix, kind in (("meta.", "metadata"), ("vars.", "vars")):
        if column.startswith(prefix):
            return (kind, column[len(prefix) :])
    return ("vars", column)


def _clash(first: str, second: str, target: Target) -> str:
    where = "the expected output" if target[0] == "expected" else f"{target[0]}.{target[1]}"
    return f"both {first!r} and {second!r} go to {where}; map one of them elsewhere."


class _Lines:
    """The file's physical lines, decoded one at a time: memory stays bounded and an encoding
    problem names its line and byte. Problems of the lines read are left in `bad` for the
    caller, which knows the row they belong to."""

    def __init__(self, file):
        self.file = file
        self.offset = 0  # bytes read
        self.number = 0  # lines read
        self.bad: list[str] = []

    def __iter__(self):
        while raw := self.file.readline(DATASET_IMPORT_MAX_LINE_BYTES + 1):
            start = self.offset
            self.offset += len(raw)
            self.number += 1
            if self.offset > DATASET_IMPORT_MAX_BYTES:
                raise _FileProblem(Problem(_too_large()))
            if len(raw) > DATASET_IMPORT_MAX_LINE_BYTES:
                limit = DATASET_IMPORT_MAX_LINE_BYTES // (1024 * 1024)
                raise _FileProblem(Problem(f"the line is longer than the limit of {limit} MB.", line=self.number))
            if start == 0 and raw.startswith(codecs.BOM_UTF8):
                raw, start = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad.append(f"not UTF-8 (byte {start + exc.start + 1} of the file is 0x{raw[exc.start]:02x}).")
                text = raw.decode("utf-8", errors="replace")
            if "\x00" in text:
                self.bad.append("contains a NUL character, which cannot be stored.")
                text = text.replace("\x00", "")
            yield text


class _FileProblem(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _csv_items(lines: _Lines, targets: dict[str, Target], problems: _Problems):
    """Yield (vars, expected, metadata) per valid data row; record the problems of the others."""
    reader = csv.reader(lines, strict=True)
    plan = None  # [(index, column, target)] once the header is read
    header = []
    row = 0
    while True:
        line = lines.number + 1  # where the next record starts
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if plan is None:
                problems.fatal(Problem(f"malformed CSV header: {exc}.", line=line))
            row = _next_row(row, line, problems)
            problems.add(Problem(_csv_error(exc), row=row, line=line))
            lines.bad.clear()
            continue
        except _FileProblem as exc:
            problems.fatal(exc.problem)
        if plan is None:
            if lines.bad:
                problems.fatal(Problem(f"header: {lines.bad[0]}", line=line))
            if fields:
                header = [column.strip() for column in fields]
                plan = _csv_plan(header, targets, line, problems)
            continue
        if not fields and not lines.bad:
            continue  # a blank line
        row = _next_row(row, line, problems)
        if lines.bad:
            for text in lines.bad:
                problems.add(Problem(text, row=row, line=line))
            lines.bad.clear()
        elif len(fields) < len(header):
            text = f"{len(fields)} fields but the header has {len(header)}: no value for this column."
            problems.add(Problem(text, row=row, line=line, column=header[len(fields)]))
        elif len(fields) > len(header):
            problems.add(Problem(f"{len(fields)} fields but the header has {len(header)} columns.", row=row, line=line))
        else:
            vars, expected, metadata = {}, "", {}
            for index, _, (kind, key) in plan:
                if kind == "vars":
                    vars[key] = fields[index]
                elif kind == "metadata":
                    metadata[key] = fields[index]
                else:
                    expected = fields[index]
            yield vars, expected, metadata
    if plan is None:
        problems.fatal(Problem("the file is empty."))
    if row == 0:
        problems.fatal(Problem("the file has a header but no rows."))


def _csv_error(exc: csv.Error) -> str:
    text = f"malformed CSV: {exc}."
    if "unexpected end of data" in str(exc):
        text += " A quoted value that starts on this row is never closed."
    elif "field limit" in str(exc):
        text += " A value that long is usually a quote that is never closed; otherwise use JSONL."
    return text


def _next_row(row: int, line: int, problems: _Problems) -> int:
    if row >= DATASET_IMPORT_MAX_ROWS:
        problems.fatal(Problem(f"the file has more than {DATASET_IMPORT_MAX_ROWS:,} rows, the limit.", line=line))
    return row + 1


def _csv_plan(columns: list[str], targets: dict[str, Target], line: int, problems: _Problems) -> list:
    """Where each column goes; the header's problems are fatal since no row can be read without it."""
    found = []
    seen, used = {}, {}
    plan = []
    for index, column in enumerate(columns):
        if not column:
            found.append(Problem(f"column {index + 1} of the header has no name.", line=line))
            continue
        if column in seen:
            text = f"the header names this column twice (columns {seen[column] + 1} and {index + 1})."
            found.append(Problem(text, line=line, column=column))
            continue
        seen[column] = index
        target = _target(column, targets)
        if target is None:
            continue
        if target[0] != "expected" and not target[1]:
            found.append(Problem("nothing follows the dot, so it names nothing.", line=line, column=column))
        elif target in used:
            found.append(Problem(_clash(used[target], column, target), line=line, column=column))
        else:
            used[target] = column
            plan.append((index, column, target))
    for column in targets:
        if column not in seen:
            text = f"the mapping names a column that is not in the header (columns: {', '.join(columns)})."
            found.append(Problem(text, line=line, column=column))
    if found:
        problems.extend(found[:MAX_PROBLEMS])
        raise _Stop
    return plan


def _jsonl_items(lines: _Lines, targets: dict[str, Target], problems: _Problems):
    """Yield (vars, expected, metadata) per valid line; record the problems of the others."""
    rows = 0
    try:
        for text in lines:
            line = lines.number
            if lines.bad:
                for problem in lines.bad:
                    problems.add(Problem(problem, line=line))
                lines.bad.clear()
                rows = _next_row(rows, line, problems)
                continue
            if not text.strip():
                continue
            rows = _next_row(rows, line, problems)
            item = _jsonl_item(text, line, targets, problems)
            if item is not None:
                yield item
    except _FileProblem as exc:
        problems.fatal(exc.problem)
    if rows == 0:
        problems.fatal(Problem("the file is empty."))


JSON_TYPES = {
    dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false",
    type(None): "null",
}  # fmt: skip


def _jsonl_item(text: str, line: int, targets: dict[str, Target], problems: _Problems):
    def problem(message, column=None):
        problems.add(Problem(message, line=line, column=column))

    try:
        obj = json.loads(text.rstrip(), parse_constant=no_constant)  # so an error at the end names this line's column
    except json.JSONDecodeError as exc:
        return problem(f"invalid JSON: {exc.msg} (column {exc.colno}).")
    except ValueError as exc:  # NaN/Infinity, or an integer too long to read
        return problem(f"invalid JSON: {exc}.")
    except RecursionError:
        return problem("invalid JSON: nested too deeply.")
    if not isinstance(obj, dict):
        return problem(f"expected a JSON object, got {JSON_TYPES.get(type(obj), 'something else')}.")
    if refused := unstorable(obj):
        return problem(f"contains {refused}, which cannot be stored.")

    if "vars" in obj:
        unknown = [key for key in obj if key not in ("vars", "expected", "metadata")]
        vars, expected = obj["vars"], obj.get("expected")
        metadata = {} if obj.get("metadata") is None else obj["metadata"]
        count = len(problems)
        if unknown:
            problem(f"a line with 'vars' has only the keys vars, expected and metadata, not {', '.join(map(repr, unknown))}.")
        if not isinstance(vars, dict):
            problem(f"vars must be an object, not {JSON_TYPES.get(type(vars))}.", "vars")
        if not isinstance(metadata, dict):
            problem(f"metadata must be an object, not {JSON_TYPES.get(type(metadata))}.", "metadata")
        if not isinstance(expected, str | None):
            problem(f"expected must be a string, not {JSON_TYPES.get(type(expected))}.", "expected")
        return None if len(problems) > count else (vars, expected or "", metadata)

    vars, expected, metadata = {}, "", {}
    used, count = {}, len(problems)
    for column, value in obj.items():
        target = _target(column, targets)
        if target is None:
            continue
        kind, key = target
        if kind != "expected" and not key:
            problem("nothing follows the dot, so it names nothing.", column)
        elif target in used:
            problem(_clash(used[target], column, target), column)
        elif kind == "expected" and not isinstance(value, str | None):
            problem(f"the expected output must be a string, not {JSON_TYPES.get(type(value))}.", column)
        else:
            used[target] = column
            if kind == "vars":
                vars[key] = value
            elif kind == "metadata":
                metadata[key] = value
            else:
                expected = value or ""
    for column in targets:
        if column not in obj:
            problem("missing: the mapping names this key.", column)
    return None if len(problems) > count else (vars, expected, metadata)


# --- Export ----------------------------------------------------------------------------------


def dataset_export(*, dataset: Dataset, format: str, out) -> int:
    """Write the items to a text stream as CSV or JSONL, in row order; return how many.

    CSV columns: every variable in first-seen order (PostgreSQL's jsonb keeps an item's keys
    shortest first, so within an item that is the database's order), expected, then
    meta.<key> for every metadata key. A variable whose name would read back as something else is written as
    vars.<name>. Values that are not strings are written as JSON; an item without a variable
    gets an empty cell (JSONL keeps both exactly)."""
    if format not in FORMATS:
        raise Invalid(f"{format!r} is not a dataset format: use csv or jsonl.", details={"format": format})
    items = dataset.items.order_by("row").values_list("vars", "expected", "metadata")
    count = 0
    if format == "jsonl":
        for vars, expected, metadata in items.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            out.write(json.dumps({"vars": vars, "expected": expected, "metadata": metadata}, ensure_ascii=False) + "\n")
            count += 1
        return count

    names, keys = {}, {}  # dicts as ordered sets
    for vars, metadata in dataset.items.order_by("row").values_list("vars", "metadata").iterator(chunk_size=EXPORT_CHUNK_SIZE):
        names.update(dict.fromkeys(vars))
        keys.update(dict.fromkeys(metadata))
    writer = csv.writer(out)
    writer.writerow([*map(_var_column, names), "expected", *(f"meta.{key}" for key in keys)])
    for vars, expected, metadata in items.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        writer.writerow([*(_cell(vars, name) for name in names), expected, *(_cell(metadata, key) for key in keys)])
        count += 1
    return count


def _var_column(name: str) -> str:
    clashes = name == "expected" or name.startswith(("meta.", "vars.")) or name != name.strip()
    return f"vars.{name}" if clashes else name


def _cell(values: dict, key: str) -> str:
    if key not in values:
        return ""
    value = values[key]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- Checks ----------------------------------------------------------------------------------


def missing_variables(*, dataset: Dataset, needed: set[str]) -> list[tuple[int, list[str]]]:
    """(row, missing names) for every item that lacks one of the needed variables, in row order."""
    needed = set(needed)
    if not needed:
        return []
    # The database skips the complete items; only the others travel.
    lacking = dataset.items.exclude(Q(vars__has_keys=sorted(needed))).order_by("row").values_list("row", "vars")
    missing = []
    for row, vars in lacking.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        names = sorted(needed.difference(vars) if isinstance(vars, dict) else needed)
        if names:
            missing.append((row, names))
    return missing


# --- Adding items from code (the API) --------------------------------------------------------


def dataset_items_add(*, dataset: Dataset, actor, items: list) -> int:
    """Append items after the last row, all or nothing; return how many. Each item is read as
    a JSONL import reads a line (item N is line N): `{"vars": {...}, "expected": "...",
    "metadata": {...}}`, or a flat object whose keys follow the default column rules."""
    import io

    if not isinstance(items, list) or not items:
        raise Invalid("Give a list of one or more items.", details={"items": "required"})
    # ensure_ascii: a value the database cannot store reaches the import's own check as an escape.
    lines = io.BytesIO("".join(json.dumps(item) + "\n" for item in items).encode())
    return dataset_import(dataset=dataset, actor=actor, file=lines, format="jsonl")
