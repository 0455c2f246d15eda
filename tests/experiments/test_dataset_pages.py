"""The dataset pages: list and create, items paginated, import a file with a mapping (errors on
the page, nothing imported), CSV/JSONL downloads; access by role; parsed output, N+1 guards."""

import csv
import io
import json
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from experiments import datasets
from experiments.models import Dataset, DatasetItem
from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from tests.factories import DatasetFactory, DatasetItemFactory, MembershipFactory, RunFactory
from tests.prompts.test_pages import soup

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab():
    """A project with an editor, a viewer, and the dataset `faq` with three items."""
    editor = MembershipFactory(role=Role.EDITOR)
    viewer = MembershipFactory(project=editor.project, role=Role.VIEWER).user
    dataset = DatasetFactory(project=editor.project, name="faq", description="Common questions")
    DatasetItem.objects.bulk_create([
        DatasetItem(dataset=dataset, row=1, vars={"q": "Why?", "n": 3, "tags": ["a", "b"]}, expected="Because", metadata={"source": "web"}),
        DatasetItem(dataset=dataset, row=2, vars={"q": "How?"}, expected=""),
        DatasetItem(dataset=dataset, row=3, vars={"q": "Who?"}, expected="Ada"),
    ])  # fmt: skip
    return SimpleNamespace(project=editor.project, editor=editor.user, viewer=viewer, dataset=dataset)


def url(lab, suffix=""):
    return f"/projects/{lab.project.slug}/datasets/{suffix}"


def upload(name: str, content: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def rows(dataset) -> list:
    return list(dataset.items.order_by("row").values_list("row", "vars", "expected", "metadata"))


def texts(html: str, css_class: str) -> list[str]:
    """The text of every element with this class."""
    return [element.get_text().strip() for element in soup(html).select(f".{css_class}")]


# --- The list and creating a dataset ---------------------------------------------------------


def test_the_list_shows_each_dataset_with_its_item_count_and_the_form_for_editors(lab, client):
    DatasetFactory(project=lab.project, name="empty")
    DatasetFactory(name="elsewhere")  # another project's
    client.force_login(lab.editor)

    html = client.get(url(lab)).content.decode()

    page = soup(html)
    assert [a["href"] for a in page.select(f'a[href^="{url(lab)}"]')] == [url(lab, "empty/"), url(lab, "faq/")]
    assert texts(html, "item-count") == ["0", "3"]
    assert "Common questions" in html and "elsewhere" not in html
    assert page.select_one("time")["datetime"].startswith(str(lab.dataset.created_at.year))
    assert page.select(f'form[method="post"][action="{url(lab)}"][hx-post="{url(lab)}"][hx-target="#dataset-create"]')
    assert page.select('input[name="name"]') and page.select('textarea[name="description"]')
    assert not page.select("p#datasets-read-only")


def test_the_home_page_links_each_project_to_its_datasets_and_keeps_the_playground(lab, client):
    client.force_login(lab.editor)

    page = soup(client.get("/").content.decode())

    assert page.select(f'a[href="{url(lab)}"]')
    assert page.select(f'a[href="/projects/{lab.project.slug}/playground/"]')


def test_create_goes_to_the_new_datasets_page(lab, client):
    client.force_login(lab.editor)

    response = client.post(url(lab), {"name": "tickets", "description": "From support"}, follow=True)

    dataset = Dataset.objects.get(project=lab.project, name="tickets")
    assert dataset.description == "From support"
    assert response.redirect_chain == [(url(lab, "tickets/"), 302)]
    html = response.content.decode()
    assert "Created the dataset tickets." in html and soup(html).select("p#no-items")
    assert soup(html).select('form#dataset-upload-form[enctype="multipart/form-data"]')


def test_create_with_htmx_redirects_the_browser_to_the_new_dataset(lab, client):
    client.force_login(lab.editor)

    response = client.post(url(lab), {"name": "tickets"}, HTTP_HX_REQUEST="true")

    assert response["HX-Redirect"] == url(lab, "tickets/")
    assert Dataset.objects.filter(project=lab.project, name="tickets").exists()


CREATE_ERRORS = {
    "no name": ("", "This field is required."),
    "not a slug": ("two words", "Use only letters, numbers, hyphens and underscores."),
    "taken": ("faq", "already has a dataset named &#x27;faq&#x27;"),
    "too long": ("x" * 101, "at most 100 characters"),
}


@pytest.mark.parametrize("case", CREATE_ERRORS.values(), ids=CREATE_ERRORS.keys())
def test_a_refused_name_is_shown_on_the_form_and_nothing_is_created(lab, client, case):
    name, message = case
    client.force_login(lab.editor)

    htmx = client.post(url(lab), {"name": name}, HTTP_HX_REQUEST="true").content.decode()
    plain = client.post(url(lab), {"name": name})

    assert htmx.startswith('<section id="dataset-create"') and message in htmx and "<html" not in htmx
    assert soup(htmx).find_all("input", attrs={"name": "name", "value": name}) or not name
    assert plain.status_code == 200 and message in plain.content.decode()
    assert soup(plain.content.decode()).select("table#dataset-list")  # the whole page again
    assert list(Dataset.objects.filter(project=lab.project).values_list("name", flat=True)) == ["faq"]


# --- Access ---------------------------------------------------------------------------------


def test_a_viewer_reads_and_downloads_but_may_not_create_or_import(lab, client):
    client.force_login(lab.viewer)

    listing = soup(client.get(url(lab)).content.decode())
    detail = client.get(url(lab, "faq/")).content.decode()

    assert listing.select("p#datasets-read-only") and not listing.select(f'form[action="{url(lab)}"]')
    assert soup(detail).select("p#dataset-read-only") and not soup(detail).select("form#dataset-upload-form")
    assert texts(detail, "row") == ["1", "2", "3"]
    assert client.get(url(lab, "faq/export.csv")).status_code == 200
    assert client.post(url(lab), {"name": "mine"}).status_code == 403
    assert client.post(url(lab, "faq/"), {"file": upload("a.csv", "q\nx\n")}).status_code == 403
    assert not Dataset.objects.filter(name="mine").exists() and lab.dataset.items.count() == 3


def test_non_members_other_projects_datasets_and_unknown_names_are_not_found(lab, client):
    stranger = MembershipFactory(role=Role.OWNER)
    theirs = f"/projects/{stranger.project.slug}/datasets/"
    client.force_login(stranger.user)

    for path in (url(lab), url(lab, "faq/"), url(lab, "faq/export.csv")):
        assert client.get(path).status_code == 404, path
    assert client.post(url(lab), {"name": "x"}).status_code == 404
    assert client.post(url(lab, "faq/"), {"file": upload("a.csv", "q\nx\n")}).status_code == 404
    assert client.get(theirs).status_code == 200
    assert client.get(f"{theirs}faq/").status_code == 404  # the name exists, in another project
    assert client.get(f"{theirs}faq/export.jsonl").status_code == 404
    assert client.get(url(lab, "nope/")).status_code == 404  # a wrong slug too
    assert lab.dataset.items.count() == 3


def test_signed_out_visitors_are_sent_to_sign_in(lab, client):
    response = client.get(url(lab, "faq/"))

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_methods_are_declared(lab, client):
    client.force_login(lab.editor)

    assert client.delete(url(lab)).status_code == 405
    assert client.put(url(lab, "faq/")).status_code == 405
    assert client.post(url(lab, "faq/export.csv")).status_code == 405


# --- Items and pagination -------------------------------------------------------------------


def test_the_items_are_shown_compactly(lab, client):
    client.force_login(lab.editor)

    html = client.get(url(lab, "faq/")).content.decode()

    assert texts(html, "row") == ["1", "2", "3"]
    assert sorted(texts(html, "key")[:3]) == ["n", "q", "tags"]
    assert '["a", "b"]' in texts(html, "value")  # not a string: shown as JSON
    assert texts(html, "expected") == ["Because", "", "Ada"]
    assert texts(html, "metadata") == ["source: web", "", ""]
    assert "Items 1–3 of" in html and not soup(html).select('nav[aria-label="Pages"]')


@pytest.fixture
def big(lab):
    """120 more items: rows 1 to 123, three pages."""
    DatasetItem.objects.bulk_create(DatasetItem(dataset=lab.dataset, row=n, vars={"q": f"q{n}"}) for n in range(4, 124))
    return lab


def test_items_are_paginated_by_50_with_links_htmx_follows_and_the_address_bar_keeps(big, client):
    client.force_login(big.editor)

    html = client.get(url(big, "faq/"), {"page": 2}).content.decode()

    assert texts(html, "row") == [str(n) for n in range(51, 101)]
    assert "Items 51–100 of" in html
    nav = soup(html).select_one('nav[aria-label="Pages"]')
    assert (nav["hx-target"], nav["hx-swap"], nav["hx-push-url"]) == ("#dataset-items", "outerHTML", "true")
    links = soup(html).select("a[hx-get]")
    assert {a["href"] for a in links} == {url(big, f"faq/?page={n}") for n in (1, 3)}
    assert all(a["href"] == a["hx-get"] for a in links)  # works without JavaScript too
    assert [a["href"] for a in links if a.get("rel") == ["next"]] == [url(big, "faq/?page=3")]
    assert texts(html, "current") == ["2"]


def test_htmx_gets_only_the_items_fragment(big, client):
    client.force_login(big.editor)

    html = client.get(url(big, "faq/"), {"page": 3}, HTTP_HX_REQUEST="true").content.decode()

    assert html.startswith('<section id="dataset-items">') and "<html" not in html
    assert texts(html, "row") == [str(n) for n in range(101, 124)]
    assert "hx-swap-oob" not in html and "dataset-upload" not in html


@pytest.mark.parametrize("page, first", [("99", 101), ("0", 101), ("-3", 101), ("x", 1), ("", 1), ("2.5", 1), ("9" * 40, 101)])
def test_a_page_out_of_range_shows_the_last_and_a_malformed_one_the_first(big, client, page, first):
    client.force_login(big.editor)

    response = client.get(url(big, "faq/"), {"page": page})

    assert response.status_code == 200
    assert texts(response.content.decode(), "row")[0] == str(first)


def test_an_empty_dataset_says_so(lab, client):
    DatasetFactory(project=lab.project, name="empty")
    client.force_login(lab.editor)

    html = client.get(url(lab, "empty/"), {"page": "7"}).content.decode()

    assert soup(html).select("p#no-items") and not soup(html).select("table.dataset-items")


# --- Import ---------------------------------------------------------------------------------

CSV = "question,answer,source,notes\nWhy?,Because,web,x\nHow?,Like so,mail,y\n"
MAPPING = "question=vars.question\r\n answer = expected \n\nsource=meta.source\nnotes=\n"


def test_import_a_csv_with_a_mapping_adds_the_items_and_shows_where_they_start(big, client):
    client.force_login(big.editor)

    response = client.post(url(big, "faq/"), {"file": upload("more.csv", CSV), "mapping": MAPPING}, follow=True)

    assert response.redirect_chain == [(url(big, "faq/?page=3"), 302)]  # 123 items before: the new ones start on page 3
    assert rows(big.dataset)[-2:] == [
        (124, {"question": "Why?"}, "Because", {"source": "web"}),
        (125, {"question": "How?"}, "Like so", {"source": "mail"}),
    ]
    html = response.content.decode()
    assert "Imported 2 items." in html
    assert texts(html, "row")[-2:] == ["124", "125"]


def test_import_with_htmx_returns_the_upload_fragment_and_the_items_out_of_band(lab, client):
    client.force_login(lab.editor)

    response = client.post(url(lab, "faq/"), {"file": upload("new.jsonl", '{"q": "Hi", "expected": "Hello"}\n'), "replace": "on"},
                           HTTP_HX_REQUEST="true")  # fmt: skip

    html = response.content.decode()
    assert html.startswith('<section id="dataset-upload"') and "Imported 1 item in place of the old ones." in html
    assert soup(html).select('section#dataset-items[hx-swap-oob="true"]')
    assert texts(html, "row")[-1] == "1" and "Hello" in texts(html, "expected")
    assert response["HX-Push-Url"] == url(lab, "faq/")
    assert rows(lab.dataset) == [(1, {"q": "Hi"}, "Hello", {})]
    assert not soup(html).select_one('input[name="replace"]').has_attr("checked")  # a fresh form


UPLOAD_ERRORS = {
    "no file": ({}, "Choose a CSV or JSONL file to upload."),
    "an empty file": ({"file": upload("a.csv", b"")}, "The file is empty."),
    "a wrong extension": ({"file": upload("data.xlsx", "q\nx\n")}, "data.xlsx is not a .csv or .jsonl file"),
    "a mapping line without =": ({"file": upload("a.csv", "q\nx\n"), "mapping": "q=vars.q\nquestion"},
                                 "&#x27;question&#x27; is not COLUMN=TARGET"),
    "a column mapped twice": ({"file": upload("a.csv", "q\nx\n"), "mapping": "q=vars.a\nq=vars.b"}, "mapped twice"),
    "an unknown target": ({"file": upload("a.csv", "q\nx\n"), "mapping": "q=answer"}, "The mapping has targets it does not know"),
    "a mapped column not in the file": ({"file": upload("a.csv", "q\nx\n"), "mapping": "question=vars.q"},
                                        "the mapping names a column that is not in the header"),
    "binary content": ({"file": upload("a.csv", b"q\n\xff\xfe\n")}, "not UTF-8"),
    "a JSONL file that is not JSON": ({"file": upload("a.jsonl", "q,a\n")}, "invalid JSON"),
}  # fmt: skip


@pytest.mark.parametrize("case", UPLOAD_ERRORS.values(), ids=UPLOAD_ERRORS.keys())
def test_bad_uploads_show_a_clear_error_and_import_nothing(lab, client, case):
    data, message = case
    client.force_login(lab.editor)
    before = rows(lab.dataset)

    htmx = client.post(url(lab, "faq/"), data, HTTP_HX_REQUEST="true")
    for value in data.values():
        if hasattr(value, "seek"):
            value.seek(0)
    plain = client.post(url(lab, "faq/"), data)

    assert htmx.status_code == 200 and htmx.content.decode().startswith('<section id="dataset-upload"')
    assert message in htmx.content.decode(), htmx.content.decode()
    assert "HX-Push-Url" not in htmx
    assert plain.status_code == 200 and message in plain.content.decode()
    assert texts(plain.content.decode(), "row")[:3] == ["1", "2", "3"]  # the page, items included
    assert rows(lab.dataset) == before


def test_bad_rows_are_listed_with_their_row_line_and_column_and_nothing_is_imported(lab, client):
    client.force_login(lab.editor)
    bad = "q,expected\nfine,ok\ntoo,many,fields\n\nshort\n"

    html = client.post(url(lab, "faq/"), {"file": upload("bad.csv", bad), "replace": "on"}, HTTP_HX_REQUEST="true").content.decode()

    assert "Nothing was imported: 2 problems. Fix the file and upload it again." in html
    assert texts(html, "problem-row") == ["2", "3"]
    assert texts(html, "problem-line") == ["3", "5"]
    assert texts(html, "problem-column") == ["—", "expected"]
    assert texts(html, "problem-text")[1].startswith("1 fields but the header has 2")
    assert len(rows(lab.dataset)) == 3  # replace too is all or nothing


def test_twenty_problems_say_the_import_stopped(lab, client):
    client.force_login(lab.editor)

    html = client.post(url(lab, "faq/"), {"file": upload("bad.csv", "q\n" + "a,b\n" * 30)}, HTTP_HX_REQUEST="true").content.decode()

    assert "Nothing was imported: stopped after 20 problems." in html
    assert len(texts(html, "problem-text")) == 20


def test_replacing_items_that_experiments_ran_on_is_refused_on_the_page(lab, client):
    RunFactory(experiment__project=lab.project, experiment__dataset=lab.dataset, item=lab.dataset.items.get(row=1))
    client.force_login(lab.editor)

    html = client.post(url(lab, "faq/"), {"file": upload("a.csv", "q\nx\n"), "replace": "on"}, HTTP_HX_REQUEST="true").content.decode()

    assert "has experiment runs; replacing its items would delete them" in html
    assert len(rows(lab.dataset)) == 3


# --- Downloads ------------------------------------------------------------------------------


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_downloads_are_attachments_that_import_back_the_same(lab, client):
    client.force_login(lab.viewer)

    as_csv = client.get(url(lab, "faq/export.csv"))
    as_jsonl = client.get(url(lab, "faq/export.jsonl"))

    slug = lab.project.slug
    assert as_csv.streaming and as_csv["Content-Type"] == "text/csv; charset=utf-8"
    assert as_csv["Content-Disposition"] == f'attachment; filename="{slug}-faq.csv"'
    assert as_jsonl["Content-Disposition"] == f'attachment; filename="{slug}-faq.jsonl"'
    csv_text, jsonl_text = body(as_csv), body(as_jsonl)
    assert int(as_csv["Content-Length"]) == len(csv_text.encode())
    assert sorted(next(csv.reader(io.StringIO(csv_text)))) == ["expected", "meta.source", "n", "q", "tags"]
    assert json.loads(jsonl_text.splitlines()[0]) == {
        "vars": {"q": "Why?", "n": 3, "tags": ["a", "b"]}, "expected": "Because", "metadata": {"source": "web"},
    }  # fmt: skip
    from_jsonl, from_csv = DatasetFactory(project=lab.project), DatasetFactory(project=lab.project)
    datasets.dataset_import(dataset=from_jsonl, actor=None, file=io.BytesIO(jsonl_text.encode()), format="jsonl")
    datasets.dataset_import(dataset=from_csv, actor=None, file=io.BytesIO(csv_text.encode()), format="csv")
    assert rows(from_jsonl) == rows(lab.dataset)
    assert [(row, vars["q"], expected) for row, vars, expected, _ in rows(from_csv)] == [(1, "Why?", "Because"), (2, "How?", ""), (3, "Who?", "Ada")]
    assert rows(from_csv)[0][1] == {"q": "Why?", "n": "3", "tags": '["a", "b"]'}  # CSV: values come back as strings


def test_a_large_download_is_spooled_to_disk_and_streamed(lab, client, monkeypatch):
    from experiments import views

    monkeypatch.setattr(views, "EXPORT_SPOOL_BYTES", 1024)
    DatasetItem.objects.bulk_create(DatasetItem(dataset=lab.dataset, row=n, vars={"q": "x" * 100}) for n in range(4, 204))
    client.force_login(lab.editor)

    response = client.get(url(lab, "faq/export.jsonl"))

    chunks = list(response.streaming_content)
    assert len(chunks) > 1 and len(b"".join(chunks).splitlines()) == 203


def test_an_unknown_download_format_is_not_found(lab, client):
    client.force_login(lab.editor)

    assert client.get(url(lab, "faq/export.xlsx")).status_code == 404


# --- The mapping lines, shared with import_dataset --map -------------------------------------


def test_mapping_lines_mean_the_same_on_the_page_and_in_the_command(lab, tmp_path):
    assert datasets.mapping_from_lines(["question=vars.q", " answer = expected", "notes=", "a=b=meta.k"]) == {
        "question": "vars.q", "answer": "expected", "notes": None, "a=b": "meta.k",
    }  # fmt: skip
    for bad in (["question"], ["=vars.q"], ["q=vars.a", "q=expected"]):
        with pytest.raises(Invalid):
            datasets.mapping_from_lines(bad)

    path = tmp_path / "faq.csv"
    path.write_text(CSV)
    with pytest.raises(CommandError, match=r"--map 'question' is not COLUMN=TARGET"):
        call_command("import_dataset", str(path), "--project", lab.project.slug, "--dataset", "faq", "--map", "question")
    call_command("import_dataset", str(path), "--project", lab.project.slug, "--dataset", "faq",
                 *[arg for line in MAPPING.splitlines() if line.strip() for arg in ("--map", line)])  # fmt: skip
    assert rows(lab.dataset)[-1] == (5, {"question": "How?"}, "Like so", {"source": "mail"})


# --- N+1 guards -----------------------------------------------------------------------------


def test_the_pages_make_as_many_queries_at_n_and_n_plus_20_rows(lab, client, django_assert_num_queries):
    client.force_login(lab.editor)
    # (path, headers, queries)
    pages = [(url(lab), {}, 5), (url(lab, "faq/"), {}, 7), (url(lab, "faq/"), {"HTTP_HX_REQUEST": "true"}, 6),
             (url(lab, "faq/export.csv"), {}, 6), (url(lab, "faq/export.jsonl"), {}, 5)]  # fmt: skip

    def read_each():
        for path, headers, queries in pages:
            with django_assert_num_queries(queries, info=f"GET {path} {headers}"):
                response = client.get(path, **headers)
                assert response.status_code == 200
                if response.streaming:
                    b"".join(response.streaming_content)

    read_each()

    for n in range(20):
        DatasetItemFactory.create_batch(2, dataset=DatasetFactory(project=lab.project))
    DatasetItem.objects.bulk_create(
        DatasetItem(dataset=lab.dataset, row=n, vars={"q": f"q{n}"}, metadata={"k": n}) for n in range(4, 24)
    )

    read_each()
    assert len(texts(client.get(url(lab)).content.decode(), "item-count")) == 21
    assert len(texts(client.get(url(lab, "faq/")).content.decode(), "row")) == 23
