"""Datasets: create one, import items from CSV or JSONL, export them, and find the items that
lack a variable a prompt needs.

File formats
------------
CSV: UTF-8 (a BOM is allowed), a header row, then one item per row. By default a column named
``expected`` is the expected output, a column ``meta.<key>`` is the metadata key ``<key>``, a
column ``vars.<name>`` is the variable ``<name>`` (for names that would otherwise clash), and
every other column is a variable. Values stay strings. Blank lines are skipped. A cell (or
column name) that starts with a single quote followed by ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return loses that quote: export adds it so that spreadsheets do not run the cell as a
formula (promptlab.csv_cells), and an exported file reads back exactly.

JSONL: UTF-8, one JSON object per line; blank lines are skipped. A line with the key ``vars``
is an item as export writes it: ``{"vars": {...}, "expected": "...", "metadata": {...}}``
(``expected`` and ``metadata`` optional, no other keys). Any other object is flat and its
keys are read like CSV columns, with the same mapping; its values keep their JSON types
except the expected output, which must be a string (or null for none).

Items' own assertions (promptfoo's test `assert`) and threshold:

- CSV, as promptfoo reads its test files: each non-empty ``__expected`` / ``__expected<N>`` cell
  is an assertion in promptfoo's syntax (``contains: Paris``, ``not-is-json``,
  ``icontains-any: a,b``, ``levenshtein(3): Paris``; a plain value is ``equals``) or, when it
  holds a JSON object with a ``kind``, one in promptlab's shape; ``__threshold`` is the item's
  threshold (0 to 1); ``__metric`` names the metric of the row's assertions that name none;
  ``__config:__expected<N>:threshold`` is that cell's threshold; ``__description`` and
  ``__metadata:<key>`` (``<key>[]``: a comma-separated list) are metadata. ``__prefix``,
  ``__suffix`` and ``__providerOutput`` change the call itself and are refused.
- JSONL: ``assert`` (or ``assertions``, the API's name) is a list of assertions, each in
  promptlab's shape ``{"kind", "config", "weight", "metric", "threshold", "inverted"}`` or in
  promptfoo's ``{"type", "value", "threshold", "weight", "metric"}``; ``threshold`` a number.

promptfoo's syntax is read by the reader evaluations.promptfoo registers in
experiments.extensions (the same mapping as its suite import); every assertion is then
normalized for the project by `extensions.item_assertions_normalize`. A model-graded
promptfoo assertion (llm-rubric, similar) needs objects a dataset import does not create and
is refused with the way to import it.

Mapping: ``{"question": "vars.q", "answer": "expected", "source": "metadata.source",
"check": "assert", "notes": None}`` sends a file column to a variable, the expected output, a
metadata key, an assertion cell or the threshold, or ignores it (None); columns it does not
name follow the default rules. A column the mapping names must be in the file's header (CSV)
or in every flat object (JSONL).

Import is all or nothing and streams: the file is read a line at a time and items are saved
in batches inside one transaction; any problem rolls all of it back, and the error lists up
to 20 problems, each with its row and line and, where it applies, its column.
"""

import codecs
import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import PurePath

import structlog
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from experiments import extensions, signals
from experiments.models import Dataset, DatasetItem, Run
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.csv_cells import csv_cell, csv_cell_read
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
TARGETS_HELP = "vars.<name>, expected, metadata.<key>, assert, threshold, or nothing to ignore the column"


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

    @property
    def place(self) -> str:
        place = f"row {self.row} (line {self.line})" if self.row else f"line {self.line}" if self.line else ""
        if self.column is not None:
            place = f"{place}, column {self.column!r}" if place else f"column {self.column!r}"
        return place

    def __str__(self):
        return f"{self.place}: {self.text}" if self.place else self.text


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
    project = dataset.project
    authorize(actor, project, Action.EDIT)
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
    checks = _Checks(project, problems)
    items = _csv_items(lines, targets, checks) if format == "csv" else _jsonl_items(lines, targets, checks)
    added, batch = 0, []
    try:
        for fields in items:
            if problems:
                continue  # nothing will be saved: only look for more problems
            row = first_row + added
            batch.append(DatasetItem(dataset_id=dataset.pk, row=row, **fields))
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


# Where a column goes: ("vars", name), ("expected", ""), ("metadata", key), ("metadata[]", key) (a
# comma-separated list), ("assert", column) (an assertion cell), ("assert_threshold", the
# __expected column), ("threshold", ""), ("metric", ""), ("refused", why), or None (ignored).
Target = tuple[str, str] | None


def _parse_mapping(mapping: dict) -> dict[str, Target]:
    targets, problems = {}, []
    for column, target in mapping.items():
        if target is None or target == "":
            targets[column] = None
        elif target in ("expected", "threshold"):
            targets[column] = (target, "")
        elif target == "assert":
            targets[column] = ("assert", column)
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
    if column.startswith("__"):
        return _promptfoo_target(column)
    for prefix, kind in (("meta.", "metadata"), ("vars.", "vars")):
        if column.startswith(prefix):
            return (kind, column[len(prefix) :])
    return ("vars", column)


_CELL_THRESHOLD = re.compile(r"__config:(__expected\d*):threshold")


def _promptfoo_target(column: str) -> Target:
    """promptfoo's special test-file columns, read as promptfoo reads them (its `__expected...`
    prefix included); any other name starting with __ is a variable."""
    if column.startswith("__expected"):
        return ("assert", column)
    if match := _CELL_THRESHOLD.fullmatch(column):
        return ("assert_threshold", match.group(1))
    if column in ("__threshold", "__metric"):
        return (column[2:], "")
    if column == "__description":
        return ("metadata", "description")
    if column.startswith("__metadata:"):
        key = column.removeprefix("__metadata:")
        return ("metadata[]", key[:-2]) if key.endswith("[]") else ("metadata", key)
    if column in ("__prefix", "__suffix", "__providerOutput"):
        return ("refused", "promptfoo changes the call with this column, which a dataset item cannot do: put the text in the "
                           "prompt, or map the column to a variable or to nothing.")  # fmt: skip
    if column.startswith("__config:"):
        return ("refused", "promptlab reads only __config:__expected<N>:threshold of promptfoo's __config columns.")
    return ("vars", column)


def _clash(first: str, second: str, target: Target) -> str:
    where = {"expected": "the expected output", "threshold": "the item's threshold"}.get(target[0], f"{target[0]}.{target[1]}")
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


def _csv_items(lines: _Lines, targets: dict[str, Target], checks: "_Checks"):
    """Yield an item's fields per valid data row; record the problems of the others."""
    problems = checks.problems
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
        fields = [csv_cell_read(field) for field in fields]  # the quote export puts before a formula-like cell
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
            item = checks.item([(column, target, fields[index]) for index, column, target in plan], row=row, line=line)
            if item is not None:
                yield item
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
        if text := _target_problem(column, target, used):
            found.append(Problem(text, line=line, column=column))
        else:
            used[target] = column
            plan.append((index, column, target))
    for column in targets:
        if column not in seen:
            text = f"the mapping names a column that is not in the header (columns: {', '.join(columns)})."
            found.append(Problem(text, line=line, column=column))
    for (kind, key), column in used.items():
        if kind == "assert_threshold" and key not in seen:
            found.append(Problem(f"the header has no column {key} for this threshold.", line=line, column=column))
    if found:
        problems.extend(found[:MAX_PROBLEMS])
        raise _Stop
    return plan


def _target_problem(column: str, target: Target, used: dict) -> str | None:
    """Why the column (or flat JSONL key) cannot go to its target, if it cannot."""
    kind, key = target
    if kind == "refused":
        return key
    if kind in ("vars", "metadata", "metadata[]") and not key:
        return f"nothing follows the {'colon' if column.startswith('__metadata:') else 'dot'}, so it names nothing."
    if target in used:
        return _clash(used[target], column, target)
    return None


def _jsonl_items(lines: _Lines, targets: dict[str, Target], checks: "_Checks"):
    """Yield an item's fields per valid line; record the problems of the others."""
    problems = checks.problems
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
            item = _jsonl_item(text, line, targets, checks)
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


STRUCTURED_KEYS = ("vars", "expected", "metadata", "assert", "assertions", "threshold", "description")
STRUCTURED_HELP = "vars, expected, metadata, assert (or assertions), threshold and description"


def _jsonl_item(text: str, line: int, targets: dict[str, Target], checks: "_Checks"):
    problems = checks.problems

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
        # An item as export writes it, or a promptfoo test: {vars, assert, threshold, description, metadata}.
        unknown = [key for key in obj if key not in STRUCTURED_KEYS]
        vars, expected = obj["vars"], obj.get("expected")
        metadata = {} if obj.get("metadata") is None else obj["metadata"]
        count = len(problems)
        if unknown:
            problem(f"a line with 'vars' has only the keys {STRUCTURED_HELP}, not {', '.join(map(repr, unknown))}.")
        if not isinstance(vars, dict):
            problem(f"vars must be an object, not {JSON_TYPES.get(type(vars))}.", "vars")
        if not isinstance(metadata, dict):
            problem(f"metadata must be an object, not {JSON_TYPES.get(type(metadata))}.", "metadata")
        elif obj.get("description") is not None:
            if not isinstance(obj["description"], str) or "description" in metadata:
                problem("description must be a string, and not also a metadata key.", "description")
            metadata = {**metadata, "description": obj["description"]}
        if not isinstance(expected, str | None):
            problem(f"expected must be a string, not {JSON_TYPES.get(type(expected))}.", "expected")
        if "assert" in obj and "assertions" in obj:
            problem("give the assertions as assert or as assertions, not both.", "assertions")
        threshold = checks.threshold(obj.get("threshold"), problem, "threshold")
        assertions = checks.entries(obj.get("assert", obj.get("assertions")), line)
        if len(problems) > count:
            return None
        return {"vars": vars, "expected": expected or "", "metadata": metadata, "assertions": assertions, "threshold": threshold}

    values, used, count = [], {}, len(problems)
    for column, value in obj.items():
        target = _target(column, targets)
        if target is None:
            continue
        if text := _target_problem(column, target, used):
            problem(text, column)
        else:
            used[target] = column
            values.append((column, target, value))
    for column in targets:
        if column not in obj:
            problem("missing: the mapping names this key.", column)
    item = checks.item(values, line=line)
    return None if len(problems) > count else item


def _listed(text: str) -> list[str]:
    """promptfoo's `__metadata:<key>[]` cell: comma-separated values, `\\,` for a comma."""
    return [part.strip().replace("\\,", ",") for part in re.split(r"(?<!\\),", text)] if text.strip() else []


def _item_threshold(value) -> float | None:
    """An item's threshold: none (None or blank), or a number from 0 to 1, given as a number or as text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:  # NaN is refused too
        raise Invalid(f"the threshold must be a number from 0 to 1, not {value!r}.", details={"threshold": value})
    return float(number)


class _Checks:
    """Reads the fields of the items of one import, their assertions and threshold included:
    promptfoo's syntax through the registered reader, then every assertion normalized for the
    project. A problem is added to `problems` at its row, line and column."""

    def __init__(self, project: Project, problems: _Problems):
        self.project, self.problems = project, problems
        self.reader = extensions.assertion_reader()

    def item(self, values: list, *, row: int | None = None, line: int | None = None) -> dict | None:
        """An item from its columns (CSV) or keys (a flat JSONL line): [(column, target, value)]."""
        count = len(self.problems)

        def problem(text, column=None):
            self.problems.add(Problem(text, row=row, line=line, column=column))

        fields = {"vars": {}, "expected": "", "metadata": {}, "assertions": [], "threshold": None}
        cells, cell_thresholds, metric = [], {}, ""
        for column, (kind, key), value in values:
            if kind == "vars":
                fields["vars"][key] = value
            elif kind == "metadata":
                fields["metadata"][key] = value
            elif kind == "expected":
                if isinstance(value, str | None):
                    fields["expected"] = value or ""
                else:
                    problem(f"the expected output must be a string, not {JSON_TYPES.get(type(value))}.", column)
            elif kind == "threshold":
                fields["threshold"] = self.threshold(value, problem, column)
            elif kind == "assert_threshold":
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                if (number := _cell_number(value)) is None:
                    problem(f"the threshold of {key} must be a number of 0 or more, not {value!r}.", column)
                else:
                    cell_thresholds[key] = number
            elif not isinstance(value, str):
                problem(f"the value must be text, as in a CSV cell, not {JSON_TYPES.get(type(value))}.", column)
            elif kind == "metadata[]":
                fields["metadata"][key] = _listed(value)
            elif kind == "metric":
                metric = value.strip()
            else:  # an assertion cell
                cells.append((column, value))
        for column, text in cells:
            if text.strip():
                at = Problem("", row=row, line=line, column=column)
                fields["assertions"] += self.cell(text, at, threshold=cell_thresholds.get(column), metric=metric)
        return None if len(self.problems) > count else fields

    def threshold(self, value, problem, column: str) -> float | None:
        try:
            return _item_threshold(value)
        except Invalid as exc:
            problem(exc.message, column)
            return None

    def cell(self, text: str, at: Problem, *, threshold: float | None, metric: str) -> list[dict]:
        """The assertion of an `__expected` cell, normalized, as a list of one (empty after a problem)."""
        where = at.place
        try:
            raw = self._read_cell(text, where, threshold)
            if metric and not raw.get("metric"):
                raw = {**raw, "metric": metric}  # promptfoo's __metric names the row's assertions
            return extensions.item_assertions_normalize(project=self.project, assertions=[raw], where=where)
        except Invalid as exc:
            # A cell holds one assertion: its place is the cell, not assert[0].
            self.problems.add(Problem(_unplaced(exc.message, where).removeprefix("assert[0]: "), at.row, at.line, at.column))
            return []

    def _read_cell(self, text: str, where: str, threshold: float | None) -> dict:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped, parse_constant=no_constant)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "kind" in obj:  # promptlab's shape, as export writes what promptfoo's syntax cannot say
                if threshold is not None:
                    raise Invalid(f"{where}: a __config threshold applies to promptfoo's syntax; give a JSON assertion its own threshold.")
                return obj
        if self.reader is None:
            raise Invalid(f"{where}: promptfoo's assertion syntax is not installed; write the assertion as JSON, {PROMPTLAB_SHAPE}.")
        return self.reader.from_cell(text, where, threshold)

    def entries(self, raw, line: int) -> list[dict]:
        """A JSONL line's `assert` list, each in promptlab's shape or in promptfoo's, normalized."""
        where = Problem("", line=line).place
        if raw is None:
            return []
        try:
            if not isinstance(raw, list):
                raise Invalid(f"{where}: assert is a list of assertions, not {JSON_TYPES.get(type(raw), 'something else')}.")
            found = []
            for index, entry in enumerate(raw):
                if isinstance(entry, dict) and "type" in entry and "kind" not in entry:
                    if self.reader is None:
                        raise Invalid(f"{where}: assert[{index}]: promptfoo's assertion shape is not installed; use {PROMPTLAB_SHAPE}.")
                    entry = self.reader.from_dict(entry, f"{where}: assert[{index}]")
                elif not isinstance(entry, dict) or "kind" not in entry:
                    raise Invalid(f"{where}: assert[{index}]: an assertion is {PROMPTLAB_SHAPE} or promptfoo's "
                                  '{"type": "contains", "value": "Paris"}.')  # fmt: skip
                found.append(entry)
            return extensions.item_assertions_normalize(project=self.project, assertions=found, where=where)
        except Invalid as exc:
            self.problems.add(Problem(_unplaced(exc.message, where), line=line))
            return []


PROMPTLAB_SHAPE = '{"kind": "contains", "config": {"value": "Paris"}}'


def _unplaced(message: str, where: str) -> str:
    """A check's message without the place it starts with: the problem names its place itself."""
    return message.removeprefix(f"{where}: ")


def _cell_number(value) -> float | None:
    """A finite number of 0 or more, given as a number or as text; else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        return None
    return float(value)


# --- Export ----------------------------------------------------------------------------------


def dataset_export(*, dataset: Dataset, format: str, out) -> int:
    """Write the items to a text stream as CSV or JSONL, in row order; return how many.

    CSV columns: every variable in first-seen order (PostgreSQL's jsonb keeps an item's keys
    shortest first, so within an item that is the database's order), expected, the items' own
    checks (see below), then meta.<key> for every metadata key. A variable whose name would read
    back as something else is written as vars.<name>. Values that are not strings are written as
    JSON; an item without a variable gets an empty cell (JSONL keeps both exactly). A text cell
    that a spreadsheet would read as a formula gets a leading quote (promptlab.csv_cells), which
    the CSV import takes off again.

    Items' own checks, only when some item has them: `__expected1`..`__expected<N>` hold an
    item's assertions in order, each in promptfoo's cell syntax when reading that cell back gives
    the same assertion and else as a JSON object in promptlab's shape; `__metric` the metric all
    of a row's assertions share; `__threshold` the item's threshold. JSONL writes `assert` (in
    promptlab's shape) and `threshold` on the lines of items that have them."""
    if format not in FORMATS:
        raise Invalid(f"{format!r} is not a dataset format: use csv or jsonl.", details={"format": format})
    items = dataset.items.order_by("row").values_list("vars", "expected", "metadata", "assertions", "threshold")
    count = 0
    if format == "jsonl":
        for vars, expected, metadata, assertions, threshold in items.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            line = {"vars": vars, "expected": expected, "metadata": metadata}
            if assertions:
                line["assert"] = assertions
            if threshold is not None:
                line["threshold"] = threshold
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
        return count

    names, keys = {}, {}  # dicts as ordered sets
    checks, metrics, thresholds = 0, False, False
    first_pass = dataset.items.order_by("row").values_list("vars", "metadata", "assertions", "threshold")
    for vars, metadata, assertions, threshold in first_pass.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        names.update(dict.fromkeys(vars))
        keys.update(dict.fromkeys(metadata))
        checks, metrics = max(checks, len(assertions)), metrics or bool(_shared_metric(assertions))
        thresholds = thresholds or threshold is not None
    cells = _Cells(dataset.project)
    check_columns = [f"__expected{n}" for n in range(1, checks + 1)] + ["__metric"] * metrics + ["__threshold"] * thresholds
    writer = csv.writer(out)
    header = [*map(_var_column, names), "expected", *check_columns, *(f"meta.{key}" for key in keys)]
    writer.writerow(map(csv_cell, header))
    for vars, expected, metadata, assertions, threshold in items.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        metric = _shared_metric(assertions)
        own = [cells.cell({**assertion, "metric": ""} if metric else assertion) for assertion in assertions]
        own += [""] * (checks - len(own)) + [metric] * metrics + ([] if not thresholds else [_threshold_cell(threshold)])
        row = [*(_cell(vars, name) for name in names), expected, *own, *(_cell(metadata, key) for key in keys)]
        writer.writerow(map(csv_cell, row))
        count += 1
    return count


def _shared_metric(assertions: list[dict]) -> str:
    """The metric every one of the assertions names (written once, as promptfoo's __metric), or ''."""
    metrics = {assertion.get("metric") or "" for assertion in assertions}
    return metrics.pop() if len(metrics) == 1 else ""


def _threshold_cell(threshold: float | None) -> str:
    return "" if threshold is None else repr(threshold)


class _Cells:
    """Each assertion's `__expected` cell, remembered (up to a bound): datasets repeat their checks."""

    REMEMBERED = 10_000

    def __init__(self, project: Project):
        self.project, self.reader, self.known = project, extensions.assertion_reader(), {}

    def cell(self, assertion: dict) -> str:
        key = json.dumps(assertion, sort_keys=True)
        if key not in self.known:
            if len(self.known) >= self.REMEMBERED:
                self.known.clear()
            cell = self.reader.to_cell(assertion, self.project) if self.reader else None
            self.known[key] = cell if cell is not None else json.dumps(assertion, ensure_ascii=False)
        return self.known[key]


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


# --- An item's own checks ----------------------------------------------------------------------


@transaction.atomic
def dataset_item_update(*, item: DatasetItem, actor, assertions, threshold) -> DatasetItem:
    """Set an item's own assertions (promptlab's shape, normalized as an import does) and its
    threshold, recorded in the dataset's history. After commit, `item_assertions_changed` is
    sent, so the layer that scores runs scores the item's done runs with the new checks."""
    dataset = item.dataset
    authorize(actor, dataset.project, Action.EDIT)
    where = f"Row {item.row}"
    if refused := unstorable(assertions):
        raise Invalid(f"{where}: the assertions contain {refused}, which cannot be stored.", details={"assertions": refused})
    assertions = extensions.item_assertions_normalize(project=dataset.project, assertions=assertions, where=where)
    try:
        threshold = _item_threshold(threshold)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.message}", details=exc.details) from None
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)  # the history, like an import
    item = DatasetItem.objects.select_for_update().get(pk=item.pk)
    if (item.assertions, item.threshold) == (assertions, threshold):
        return item
    item.assertions, item.threshold = assertions, threshold
    item.save(update_fields=["assertions", "threshold"])
    dataset._history_user = actor
    dataset._change_reason = f"Changed the assertions and threshold of row {item.row}"
    dataset.save()
    item_id = item.pk
    transaction.on_commit(lambda: signals.item_assertions_changed.send(sender=DatasetItem, item_id=item_id))
    logger.info("experiments.item_assertions_changed", dataset_id=dataset.pk, item_id=item.pk, assertions=len(assertions))
    return item


def assertions_from_json(text: str) -> list:
    """The assertions a JSON text holds (the dataset page's editor); blank is none."""
    if not text.strip():
        return []
    try:
        assertions = json.loads(text, parse_constant=no_constant)
    except ValueError as exc:
        raise Invalid(f"The assertions are not valid JSON: {exc}.", details={"assertions": str(exc)}) from None
    if not isinstance(assertions, list):
        raise Invalid(f"The assertions are a JSON list such as [{PROMPTLAB_SHAPE}].", details={"assertions": "not a list"})
    return assertions
