"""CSV exports a spreadsheet opens safely: a text cell that starts like a formula is written with a
leading quote, numbers stay numbers, and a dataset's CSV export reads back exactly."""

import csv
import io
import json

import pytest

from experiments.datasets import dataset_create, dataset_export, dataset_import
from promptlab.accounts.models import Role
from promptlab.csv_cells import csv_cell, csv_cell_read
from tests.factories import ExperimentFactory, MembershipFactory, RunFactory

FORMULAS = ["=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\r=x", "=HYPERLINK(\"http://x\")"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_text_that_starts_like_a_formula_gets_a_leading_quote(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-0.5, -3, 0, "-0.5", "+2", "-1e-07", "plain", "", "a=b", "{\"x\": -1}", None])
def test_numbers_and_other_text_are_written_as_they_are(value):
    assert csv_cell(value) == value


@pytest.mark.parametrize("text", [*FORMULAS, "'=x", "''-y", "'", "'-0.5", "-0.5", "it's", "'plain"])
def test_what_is_written_reads_back_exactly(text):
    assert csv_cell_read(csv_cell(text)) == text


def test_a_quote_before_an_ordinary_value_is_kept_on_reading():
    assert csv_cell_read("'plain") == "'plain" and csv_cell_read("'-0.5") == "'-0.5"


@pytest.mark.django_db
def test_a_dataset_export_quotes_formulas_keeps_numbers_and_imports_back_the_same():
    project = MembershipFactory().project
    dataset = dataset_create(project=project, actor=None, name="cells")
    line = {"vars": {"=cmd": "=1+1", "delta": -0.5, "text": "-0.5", "at": "@SUM(A1)"}, "expected": "+A1*2", "metadata": {"k": "\tx"}}
    dataset_import(dataset=dataset, actor=None, file=io.BytesIO(json.dumps(line).encode()), format="jsonl")
    out = io.StringIO()

    dataset_export(dataset=dataset, format="csv", out=out)

    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(table) == 1 and "'=cmd" in table[0]  # a column name is a cell too
    row = table[0]
    assert row["'=cmd"] == "'=1+1" and row["at"] == "'@SUM(A1)" and row["expected"] == "'+A1*2" and row["meta.k"] == "'\tx"
    assert row["delta"] == "-0.5" and row["text"] == "-0.5"  # a number is not a formula
    copy = dataset_create(project=project, actor=None, name="copy")
    dataset_import(dataset=copy, actor=None, file=io.BytesIO(out.getvalue().encode()), format="csv")
    item = copy.items.get()
    assert item.vars == {"=cmd": "=1+1", "delta": "-0.5", "text": "-0.5", "at": "@SUM(A1)"}  # CSV values are text
    assert item.expected == "+A1*2" and item.metadata == {"k": "\tx"}


@pytest.mark.django_db
def test_an_experiment_export_quotes_formulas_in_outputs_and_errors_and_keeps_numbers(client):
    owner = MembershipFactory(role=Role.OWNER)
    experiment = ExperimentFactory(project=owner.project, status="finished")
    RunFactory(experiment=experiment, output="=HYPERLINK(\"http://evil\")", error="-1+cmd", latency_ms=120.5, cost_usd="0.0010")
    client.force_login(owner.user)

    text = b"".join(client.get(f"/experiments/{experiment.pk}/export.csv").streaming_content).decode()

    row = next(csv.DictReader(io.StringIO(text)))
    assert row["output"] == "'=HYPERLINK(\"http://evil\")" and row["error"] == "'-1+cmd"
    assert row["latency_ms"] == "120.5" and float(row["cost_usd"]) == 0.001 and row["repeat"] == "1"
