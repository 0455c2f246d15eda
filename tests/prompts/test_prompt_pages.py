"""The prompt pages outside the admin: the project switcher, the prompt list (filters,
pagination, empty states) and a prompt's page (content, timeline, side-by-side diff, render
preview); access by role; bad input; parsed output; N+1 guards."""

from dataclasses import dataclass

import pytest
from bs4 import BeautifulSoup

from promptlab.accounts.models import Membership, Project, Role
from prompts import services
from prompts.models import Prompt
from tests.factories import MembershipFactory, ModelEndpointFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass
class Lab:
    project: Project
    editor: object
    viewer: object
    model: object


@pytest.fixture
def lab():
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    viewer = MembershipFactory(project=editor.project, role=Role.VIEWER, user__email="reader@example.com")
    model = ModelEndpointFactory(display_name="Demo", model="promptlab-demo/echo")
    return Lab(project=editor.project, editor=editor.user, viewer=viewer.user, model=model)


def create(lab, name="greet", *, project=None, actor=None, **fields) -> Prompt:
    fields = {"template": "Hello {{ name }}!", **fields}
    return services.prompt_create(
        project=project or lab.project, actor=actor or lab.editor, name=name, message="First draft", endpoint=lab.model, **fields
    )


def update(lab, prompt, message, **fields) -> Prompt:
    return services.prompt_update(prompt=prompt, actor=lab.editor, message=message, **fields)


def list_url(lab, query=""):
    return f"/projects/{lab.project.slug}/prompts/{query}"


def detail_url(lab, name="greet", query=""):
    return f"/projects/{lab.project.slug}/prompts/{name}/{query}"


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def text(node) -> str:
    return " ".join(node.get_text(" ").split())


def fragment(client, url, target, method="get", data=None):
    return getattr(client, method)(url, data or {}, **HTMX, HTTP_HX_TARGET=target)


# --- Navigation -------------------------------------------------------------------------------


def test_the_switcher_lists_the_users_projects_and_marks_the_current_one(lab, client):
    other = MembershipFactory(user=lab.editor, role=Role.VIEWER, project__name="Zeta")
    ProjectFactory(name="Not mine")
    client.force_login(lab.editor)

    page = soup(client.get(list_url(lab)))

    switcher = page.select_one("nav[aria-label=Main] details#project-switcher")
    links = {a["href"]: a for a in switcher.select("a")}
    assert set(links) == {list_url(lab), f"/projects/{other.project.slug}/prompts/"}
    assert links[list_url(lab)].get("aria-current") == "page" and not links[f"/projects/{other.project.slug}/prompts/"].get("aria-current")
    assert text(switcher.select_one("summary")) == lab.project.name
    assert "Not mine" not in text(switcher)


def test_the_home_page_links_each_project_to_its_prompts_and_keeps_its_other_pages(lab, client):
    client.force_login(lab.viewer)

    page = soup(client.get("/"))

    hrefs = [a["href"] for a in page.select("#project-list a")]
    slug = lab.project.slug
    assert hrefs == [f"/projects/{slug}/{page}/" for page in ("prompts", "playground", "datasets", "experiments")]


def test_the_switcher_reads_one_query_however_many_projects(lab, client, django_assert_num_queries):
    client.force_login(lab.editor)
    with django_assert_num_queries(7):
        client.get(list_url(lab))
    for _ in range(35):
        MembershipFactory(user=lab.editor, role=Role.VIEWER)
    with django_assert_num_queries(7):
        page = soup(client.get(list_url(lab)))

    links = page.select("#project-switcher a")
    assert len(links) == 31 and links[-1]["href"] == "/" and text(links[-1]) == "All projects…"  # 30, then the rest on the home page


# --- The prompt list --------------------------------------------------------------------------


def test_the_list_shows_each_prompt_with_its_model_version_labels_and_last_author(lab, client):
    greet = create(lab, description="Greets a customer", tags=["support", "tone"])
    greet = update(lab, greet, "Warmer", template="Hello dear {{ name }}!")
    services.label_move(prompt=greet, actor=lab.editor, label="staging", version=1)
    services.label_move(prompt=greet, actor=lab.editor, label="beta", version=2)
    second = MembershipFactory(project=lab.project, role=Role.EDITOR, user__email="second@example.com")
    create(lab, "summary", actor=second.user, kind="chat", messages=[{"role": "user", "content": "Sum up {{ text }}"}])
    create(lab, "elsewhere", project=MembershipFactory(user=lab.editor).project)
    client.force_login(lab.viewer)

    response = client.get(list_url(lab))

    assert response.status_code == 200
    rows = soup(response).select("#prompt-list tbody tr")
    assert [row["id"] for row in rows] == ["prompt-greet", "prompt-summary"]
    greet_row, summary_row = rows
    assert greet_row.select_one(".name a")["href"] == detail_url(lab)
    assert text(greet_row.select_one(".description")) == "Greets a customer"
    assert [text(tag) for tag in greet_row.select(".tag")] == ["support", "tone"]
    assert text(greet_row.select_one(".kind")) == "Text" and text(summary_row.select_one(".kind")) == "Chat"
    assert text(greet_row.select_one(".model")) == "Demo — demo (offline)"
    assert text(greet_row.select_one(".version")) == "v2"
    assert [text(chip) for chip in greet_row.select(".labels .label-chip")] == ["beta → v2", "staging → v1"]
    assert greet_row.select_one(".updated time")["datetime"].startswith(str(greet.updated_at.year))
    assert text(greet_row.select_one(".author")) == "pm@example.com"
    assert text(summary_row.select_one(".author")) == "second@example.com"
    assert text(summary_row.select_one(".labels")) == "—"


def test_the_filter_form_and_pages_use_htmx_with_real_links(lab, client):
    for number in range(30):
        create(lab, f"prompt-{number:02}", tags=["bulk"])
    client.force_login(lab.editor)

    page = soup(client.get(list_url(lab, "?tag=bulk")))

    form = page.select_one("form#prompt-filters")
    assert (form["method"], form["action"], form["hx-get"]) == ("get", list_url(lab), list_url(lab))
    assert (form["hx-target"], form["hx-swap"], form["hx-push-url"]) == ("#prompt-list", "outerHTML", "true")
    assert {field["name"] for field in form.select("input, select")} == {"q", "tag", "label"}
    assert form.select_one("select[name=tag] option[selected]")["value"] == "bulk"
    assert len(page.select("#prompt-list tbody tr")) == 25
    assert text(page.select_one("#prompt-count")) == "30"
    pages = page.select_one("#prompt-list nav.pagination")
    assert (pages["hx-target"], pages["hx-push-url"]) == ("#prompt-list", "true")
    links = pages.select("a")
    assert links and all(a["href"] == a["hx-get"] for a in links)
    assert links[-1]["href"] == list_url(lab, "?tag=bulk&page=2")  # the filters stay on every page

    second = soup(client.get(links[-1]["href"]))
    assert [row["id"] for row in second.select("#prompt-list tbody tr")] == [f"prompt-prompt-{n}" for n in range(25, 30)]


def test_an_htmx_request_gets_only_the_list_fragment(lab, client):
    create(lab, description="Greets a customer")
    create(lab, "farewell")
    client.force_login(lab.editor)

    response = fragment(client, list_url(lab), "prompt-list", data={"q": "CUSTOMER"})

    assert response.status_code == 200
    page = soup(response)
    assert not page.select("html, nav[aria-label=Main], form#prompt-filters")
    assert [child.name for child in page.find_all(recursive=False)] == ["section"]
    assert page.section["id"] == "prompt-list"
    assert [row["id"] for row in page.select("tbody tr")] == ["prompt-greet"]  # matched in the description
    assert {"HX-Request", "HX-Target"} <= {value.strip() for value in response["Vary"].split(",")}


def test_a_history_restore_gets_the_whole_page(lab, client):
    client.force_login(lab.editor)

    response = client.get(list_url(lab), **HTMX, HTTP_HX_TARGET="prompt-list", HTTP_HX_HISTORY_RESTORE_REQUEST="true")

    assert soup(response).select_one("form#prompt-filters")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?q=greet", ["greet"]),
        ("?q=REFUND", ["refund-policy"]),  # in the description, any case
        ("?tag=support", ["greet", "refund-policy"]),
        ("?label=production", ["refund-policy"]),
        ("?tag=support&label=staging", ["greet"]),
        ("?q=policy&tag=support&label=production", ["refund-policy"]),
        ("?tag=supp", []),  # tags match whole
    ],
)
def test_filters_by_text_tag_and_label(lab, client, query, expected):
    greet = create(lab, tags=["support"])
    refund = create(lab, "refund-policy", description="How refunds work", tags=["support", "billing"])
    create(lab, "internal", tags=["ops"])
    services.label_move(prompt=greet, actor=lab.editor, label="staging", version=1)
    services.label_move(prompt=refund, actor=None, label="production", version=1)
    client.force_login(lab.viewer)

    page = soup(client.get(list_url(lab, query)))

    assert [row["id"].removeprefix("prompt-") for row in page.select("#prompt-list tbody tr")] == expected


def test_the_tag_and_label_choices_are_the_projects_own(lab, client):
    greet = create(lab, tags=["support", "billing"])
    services.label_move(prompt=greet, actor=lab.editor, label="staging", version=1)
    create(lab, "other", project=MembershipFactory(user=lab.editor).project, tags=["secret-tag"])
    client.force_login(lab.editor)

    form = soup(client.get(list_url(lab))).select_one("#prompt-filters")

    assert [option["value"] for option in form.select("select[name=tag] option")] == ["", "billing", "support"]
    assert [option["value"] for option in form.select("select[name=label] option")] == ["", "staging"]


@pytest.mark.parametrize("query", ["?tag=nope", "?label=nope", "?q=zzz", "?tag=support&label=nope", "?label=a%20b%20c"])
def test_a_filter_that_matches_nothing_shows_an_empty_state(lab, client, query):
    create(lab, tags=["support"])
    client.force_login(lab.editor)

    response = client.get(list_url(lab, query))

    assert response.status_code == 200
    page = soup(response)
    assert not page.select("#prompt-list table")
    empty = page.select_one("#prompt-list #no-matches")
    assert empty.select_one("a")["href"] == list_url(lab)
    assert not page.select("#no-prompts")
    asked = dict(part.split("=") for part in query[1:].split("&"))
    for name in {"tag", "label"} & set(asked):  # an unknown value stays selected in the form
        assert page.select_one(f"#prompt-filters select[name={name}] option[selected]")["value"] == asked[name].replace("%20", " ")


def test_a_project_without_prompts_says_so_and_offers_editors_the_admin(lab, client):
    client.force_login(lab.editor)
    page = soup(client.get(list_url(lab)))
    assert page.select_one("#no-prompts a")["href"] == "/admin/prompts/prompt/add/"
    assert page.select_one("#add-prompt")

    client.force_login(lab.viewer)
    page = soup(client.get(list_url(lab)))
    assert page.select_one("#no-prompts") and not page.select("#no-prompts a, #add-prompt")


@pytest.mark.parametrize("query", ["?q=" + "x" * 201, "?tag=a%00b", "?label=" + "l" * 51])
def test_unreadable_filters_are_a_400_page_not_a_500(lab, client, query):
    create(lab)
    client.force_login(lab.editor)

    response = client.get(list_url(lab, query))

    assert response.status_code == 400
    page = soup(response)
    assert page.select_one("#prompt-filter-errors li")
    assert page.select_one("form#prompt-filters") and not page.select("#prompt-list table")
    assert fragment(client, list_url(lab, query), "prompt-list").status_code == 400


@pytest.mark.parametrize("number", ["abc", "0", "-1", "999"])
def test_a_page_number_out_of_range_shows_a_page_of_the_list(lab, client, number):
    create(lab)
    client.force_login(lab.editor)

    response = client.get(list_url(lab, f"?page={number}"))

    assert response.status_code == 200
    assert [row["id"] for row in soup(response).select("#prompt-list tbody tr")] == ["prompt-greet"]


def test_the_list_reads_the_same_number_of_queries_at_any_size(lab, client, django_assert_num_queries):
    def add(count, start):
        for number in range(start, start + count):
            author = MembershipFactory(project=lab.project, role=Role.EDITOR).user
            prompt = create(lab, f"p-{number:03}", actor=author, tags=["t"])
            services.label_move(prompt=prompt, actor=author, label="staging", version=1)

    add(3, 0)
    client.force_login(lab.viewer)
    with django_assert_num_queries(9):
        response = client.get(list_url(lab, "?tag=t&label=staging"))
    assert len(soup(response).select("#prompt-list tbody tr")) == 3
    add(20, 3)
    with django_assert_num_queries(9):
        response = client.get(list_url(lab, "?tag=t&label=staging"))
    assert len(soup(response).select("#prompt-list tbody tr")) == 23


# --- A prompt's page --------------------------------------------------------------------------


def test_the_page_shows_the_current_content_parameters_and_variables(lab, client):
    create(
        lab, "support-chat", kind="chat", template="", description="Answers tickets", params={"temperature": 0.2, "stop": ["\n\n"]},
        messages=[{"role": "system", "content": "You help {{ customer }}."}, {"placeholder": "history"}, {"role": "user", "content": "{{ question }}"}],
        variables=[{"name": "customer", "type": "string", "default": "a customer", "description": "Who asks"},
                   {"name": "question", "type": "string"}],
    )  # fmt: skip
    client.force_login(lab.viewer)

    page = soup(client.get(detail_url(lab, "support-chat")))

    content = page.select_one("#prompt-content")
    assert text(content.select_one("h2")).startswith("Version 1")
    assert text(content.select_one(".kind")) == "Chat" and text(content.select_one(".model")) == "Demo — demo (offline)"
    messages = content.select("#prompt-messages li")
    assert [text(m.select_one(".role")) for m in messages] == ["system", "placeholder", "user"]
    assert messages[0].select_one("pre").get_text() == "You help {{ customer }}."
    assert text(messages[1].select_one("code")) == "history"
    params = {text(row.th): text(row.td) for row in content.select("#prompt-params tr")}
    assert params == {"temperature": "0.2", "stop": '["\\n\\n"]'}
    variables = [[text(cell) for cell in row.select("td")] for row in content.select("#prompt-variables tbody tr")]
    assert variables == [
        ["customer", "string", "no", "a customer", "Who asks"],
        ["question", "string", "yes", "", ""],
        ["history", "list", "yes", "", "used by the template, not declared"],
    ]
    assert text(page.select_one(".prompt-description")) == "Answers tickets"


def test_a_text_prompt_shows_its_template(lab, client):
    create(lab)
    client.force_login(lab.viewer)

    page = soup(client.get(detail_url(lab)))

    assert page.select_one("#prompt-template").get_text() == "Hello {{ name }}!"
    assert page.select_one("#no-params")


def test_the_timeline_lists_every_version_newest_first_with_author_message_and_labels(lab, client):
    prompt = create(lab, template="one")
    second = MembershipFactory(project=lab.project, role=Role.EDITOR, user__email="second@example.com").user
    prompt = services.prompt_update(prompt=prompt, actor=second, message="Say two", template="two")
    prompt = update(lab, prompt, "Say three", template="three")
    services.label_move(prompt=prompt, actor=lab.editor, label="staging", version=2)
    services.label_move(prompt=prompt, actor=None, label="production", version=2)
    client.force_login(lab.viewer)

    page = soup(client.get(detail_url(lab)))

    rows = page.select("#prompt-timeline li.version")
    assert [row["id"] for row in rows] == ["version-3", "version-2", "version-1"]
    assert [text(row.select_one(".author")) for row in rows] == ["pm@example.com", "second@example.com", "pm@example.com"]
    assert [text(row.select_one(".change-message")) for row in rows] == ["Say three", "Say two", "First draft"]
    assert [[text(chip) for chip in row.select(".label-chip")] for row in rows] == [[], ["production", "staging"], []]
    assert all(row.select_one("time")["datetime"] for row in rows)
    links = [row.select_one("a.diff-previous") for row in rows]
    assert links[0]["href"] == detail_url(lab, query="?a=2&b=3#prompt-diff") and links[0]["hx-get"] == detail_url(lab, query="?a=2&b=3")
    assert (links[0]["hx-target"], links[0]["hx-push-url"]) == ("#prompt-diff", "true")
    assert links[2] is None  # nothing before version 1
    labels = {text(li.select_one(".label-chip")): li.select_one("a")["href"] for li in page.select("#prompt-labels li.label")}
    assert labels == {"production": "#version-2", "staging": "#version-2"}


def test_the_diff_shows_the_two_versions_side_by_side(lab, client):
    prompt = create(lab, template="Hello dear {{ name }}!")
    prompt = update(lab, prompt, "Drop dear", template="Hello {{ name }}!")
    update(lab, prompt, "Cooler", template="Hi {{ name }}, welcome!", params={"temperature": 0.2})
    client.force_login(lab.viewer)

    page = soup(client.get(detail_url(lab, query="?a=1&b=3")))

    diff = page.select_one("#prompt-diff")
    template = diff.select_one(".diff-field[data-field=template]")
    before, after = template.select(".diff-sides pre")
    assert "diff-a" in before["class"] and "diff-b" in after["class"]
    assert before.get_text() == "Hello dear {{ name }}!" and after.get_text() == "Hi {{ name }}, welcome!"
    assert [d.get_text() for d in before.select("del")] == ["Hello dear"] and not before.select("ins")
    assert [i.get_text() for i in after.select("ins")] == ["Hi", ", welcome"] and not after.select("del")
    params = diff.select_one(".diff-field[data-field=params] table.diff-keys")
    assert [text(th) for th in params.select("thead th")] == ["key", "v1", "v3"]
    assert [[text(td) for td in row.select("td")] for row in params.select("tbody tr")] == [["temperature", "", "0.2"]]
    assert params.select_one("td.diff-b ins")
    picks = {select["name"]: select.select_one("option[selected]")["value"] for select in diff.select("form select")}
    assert picks == {"a": "1", "b": "3"}
    form = diff.select_one("form")
    assert (form["hx-get"], form["hx-target"], form["hx-push-url"]) == (detail_url(lab), "#prompt-diff", "true")


def test_the_diff_compares_the_newest_version_with_the_one_before_by_default(lab, client):
    prompt = create(lab, template="one")
    update(lab, prompt, "Two", template="two")
    client.force_login(lab.viewer)

    diff = soup(client.get(detail_url(lab))).select_one("#prompt-diff")

    assert [text(side.select_one("strong")) for side in diff.select(".diff-heading > div")] == ["Version 1", "Version 2"]
    assert diff.select_one(".diff-a del").get_text() == "one" and diff.select_one(".diff-b ins").get_text() == "two"


def test_a_single_version_or_the_same_version_twice_has_no_differences(lab, client):
    create(lab)
    client.force_login(lab.viewer)

    diff = soup(client.get(detail_url(lab))).select_one("#prompt-diff")

    assert text(diff.select_one("#no-differences")) == "Pick two different versions to see what changed."


def test_the_diff_reads_versions_typed_as_v3_or_3_and_labels(lab, client):
    prompt = create(lab, template="one")
    prompt = update(lab, prompt, "Two", template="two")
    services.label_move(prompt=prompt, actor=lab.editor, label="staging", version=1)
    client.force_login(lab.viewer)

    for query in ("?a=v1&b=V2", "?a=1&b=2", "?a=staging&b=latest"):
        diff = soup(client.get(detail_url(lab, query=query))).select_one("#prompt-diff")
        assert text(diff.select_one(".diff-a strong")) == "Version 1" and text(diff.select_one(".diff-b strong")) == "Version 2", query
    preview = soup(client.get(detail_url(lab, query="?version=v1"))).select_one("#prompt-preview")
    assert text(preview.select_one("#preview-button")) == "Render version 1"


def test_an_htmx_diff_request_gets_only_the_diff_fragment(lab, client):
    prompt = create(lab, template="one")
    update(lab, prompt, "Two", template="two")
    client.force_login(lab.viewer)

    response = fragment(client, detail_url(lab), "prompt-diff", data={"a": "2", "b": "1"})

    page = soup(response)
    assert [child.name for child in page.find_all(recursive=False)] == ["section"] and page.section["id"] == "prompt-diff"
    assert page.select_one(".diff-a del").get_text() == "two" and page.select_one(".diff-b ins").get_text() == "one"
    assert not page.select("#prompt-timeline, #prompt-preview")


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("?a=abc&b=1", 404, "has no label 'abc'"),  # anything that is not v3 or 3 names a label
        ("?a=1&b=1.5", 404, "has no label '1.5'"),
        ("?a=1&b=%EF%BC%91", 404, "has no label"),  # a full-width digit is no version number
        ("?a=" + "9" * 30, 400, "is not a version: versions are numbered from 1"),
        ("?a=99&b=1", 404, "has no version 99"),
        ("?a=v99&b=1", 404, "has no version 99"),
        ("?a=0", 400, "'0' is not a version"),
        ("?a=v0", 400, "'v0' is not a version"),
        ("?a=1&b=-1", 400, "'-1' is not a version"),
    ],
)
def test_a_bad_diff_version_is_a_400_or_404_page_saying_why(lab, client, query, status, message):
    create(lab)
    client.force_login(lab.viewer)

    response = client.get(detail_url(lab, query=query))

    assert response.status_code == status
    page = soup(response)
    assert message in text(page.select_one("#prompt-diff #diff-error"))
    assert page.select("#prompt-timeline li.version") and page.select_one("#preview-form")  # the rest of the page works
    assert fragment(client, detail_url(lab, query=query), "prompt-diff").status_code == status


def test_the_timeline_reads_the_same_number_of_queries_at_any_length(lab, client, django_assert_num_queries):
    prompt = create(lab, template="v1")
    for number in range(2, 4):
        prompt = update(lab, prompt, f"Version {number}", template=f"v{number}")
        services.label_move(prompt=prompt, actor=lab.editor, label=f"l{number}", version=number)
    client.force_login(lab.viewer)
    with django_assert_num_queries(10):
        response = client.get(detail_url(lab))
    assert len(soup(response).select("#prompt-timeline li.version")) == 3
    for number in range(4, 24):
        author = MembershipFactory(project=lab.project, role=Role.EDITOR).user
        prompt = services.prompt_update(prompt=prompt, actor=author, message=f"Version {number}", template=f"v{number}")
        services.label_move(prompt=prompt, actor=author, label=f"l{number}", version=number)
    with django_assert_num_queries(10):
        response = client.get(detail_url(lab))
    assert len(soup(response).select("#prompt-timeline li.version")) == 23


# --- The render preview -----------------------------------------------------------------------


def test_the_preview_form_asks_for_the_versions_variables(lab, client):
    prompt = create(lab, template="Hello {{ name }}!")
    update(
        lab, prompt, "Orders", template="Hi {{ name }}, order {{ order }}{% if vip %} (VIP){% endif %}.",
        variables=[{"name": "order", "type": "integer", "description": "The order number"}, {"name": "vip", "type": "boolean", "default": False}],
    )  # fmt: skip
    client.force_login(lab.viewer)

    form = soup(client.get(detail_url(lab))).select_one("#prompt-preview form#preview-form")

    assert (form["method"], form["hx-post"], form["hx-target"]) == ("post", detail_url(lab), "#prompt-preview")
    assert form.select_one("input[name=csrfmiddlewaretoken]")
    assert form.select_one("select[name=version] option[selected]")["value"] == "2"
    fields = form.select("[name^=var_]")
    assert [(field.name, field["name"]) for field in fields] == [("input", "var_order"), ("input", "var_vip"), ("textarea", "var_name")]
    assert fields[1]["placeholder"] == "JSON, default: false"
    assert "The order number" in text(form)

    response = fragment(client, detail_url(lab), "prompt-preview", data={"version": "1", "var_name": "Ada"})
    page = soup(response)
    assert page.section["id"] == "prompt-preview" and not page.select("#prompt-timeline")
    assert [field["name"] for field in page.select("[name^=var_]")] == ["var_name"]
    assert page.select_one("textarea[name=var_name]").get_text() == "Ada"  # kept across the switch
    assert not page.select("#preview-text, #preview-error")  # changing the version does not render


def test_the_preview_renders_a_chosen_version_with_typed_variables(lab, client):
    prompt = create(lab, template="Hello {{ name }}!")
    update(lab, prompt, "Orders", template="Hi {{ name }}, order {{ order + 1 }}.", variables=[{"name": "order", "type": "integer"}])
    client.force_login(lab.viewer)  # a preview only reads: viewers may use it

    page = soup(client.post(detail_url(lab), {"version": "2", "var_name": "Ada\r\nLovelace", "var_order": "41"}))
    assert page.select_one("#preview-text").get_text() == "Hi Ada\nLovelace, order 42."
    assert page.select_one("#prompt-timeline") and page.select_one("textarea[name=var_name]").get_text() == "Ada\nLovelace"

    response = fragment(client, detail_url(lab), "prompt-preview", "post", {"version": "1", "var_name": "Ada"})
    page = soup(response)
    assert page.section["id"] == "prompt-preview"
    assert page.select_one("#preview-text").get_text() == "Hello Ada!"
    assert Prompt.objects.get(pk=prompt.pk).version == 2 and prompt.history.count() == 2  # previews never save


def test_the_preview_renders_chat_messages(lab, client):
    create(
        lab, "support-chat", kind="chat", template="",
        messages=[{"role": "system", "content": "Help {{ customer }}."}, {"placeholder": "history"}, {"role": "user", "content": "{{ q }}"}],
    )  # fmt: skip
    client.force_login(lab.viewer)

    data = {"var_customer": "Ada", "var_q": "Where is my order?", "var_history": '[{"role": "assistant", "content": "Hello!"}]'}
    page = soup(fragment(client, detail_url(lab, "support-chat"), "prompt-preview", "post", data))

    messages = [(text(li.select_one(".role")), li.select_one("pre").get_text()) for li in page.select("#preview-messages li")]
    assert messages == [("system", "Help Ada."), ("assistant", "Hello!"), ("user", "Where is my order?")]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"var_name": "Ada"}, "Missing variables: order."),
        ({"var_name": "Ada", "var_order": "forty"}, "The variable order needs a JSON value of type integer, e.g. 42."),
        ({"var_name": "Ada", "var_order": '"41"'}, "Wrong variable types"),
        ({"var_name": "Ada", "var_order": "1", "var_extra": "x"}, None),  # a field the version does not have is not read
    ],
)
def test_render_errors_are_shown_inline_with_the_renderers_message(lab, client, data, message):
    create(lab, template="Hi {{ name }}, order {{ order }}.", variables=[{"name": "order", "type": "integer"}])
    client.force_login(lab.viewer)

    response = fragment(client, detail_url(lab), "prompt-preview", "post", data)

    assert response.status_code == 200
    page = soup(response)
    if message is None:
        assert page.select_one("#preview-text").get_text() == "Hi Ada, order 1." and not page.select("#preview-error")
    else:
        assert text(page.select_one("#preview-error")).startswith(message) and not page.select("#preview-text")
        assert page.select_one("#preview-form textarea[name=var_name]").get_text() == "Ada"  # the form keeps what was typed


def test_a_template_error_of_a_version_is_shown_inline(lab, client):
    prompt = create(lab, template="Hi {{ name }}!")
    # The snippet the version includes is gone: the renderer says so.
    snippet = create(lab, "signature", template="Bye")
    update(lab, prompt, "Sign", template='Hi {{ name }}! {% include "signature" %}')
    services.prompt_delete(prompt=snippet, actor=None)
    client.force_login(lab.viewer)

    page = soup(fragment(client, detail_url(lab), "prompt-preview", "post", {"var_name": "Ada"}))

    assert "signature" in text(page.select_one("#preview-error"))


@pytest.mark.parametrize("version, status", [("v0", 400), ("-2", 400), ("abc", 404), ("2.0", 404), ("7", 404), ("v7", 404)])
def test_a_bad_preview_version_is_a_400_or_404(lab, client, version, status):
    create(lab)
    client.force_login(lab.viewer)

    response = client.post(detail_url(lab), {"version": version, "var_name": "Ada"})

    assert response.status_code == status
    error = soup(response).select_one("#prompt-preview #preview-version-error")
    assert error and error.select_one("a")["href"] == detail_url(lab)
    assert fragment(client, detail_url(lab), "prompt-preview", data={"version": version}).status_code == status


# --- Access -----------------------------------------------------------------------------------


def test_pages_need_a_signed_in_user(lab, client):
    create(lab)
    for url in [list_url(lab), detail_url(lab)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.post(detail_url(lab), {"var_name": "Ada"}).status_code == 302


def test_non_members_and_other_projects_prompts_are_not_found(lab, client):
    create(lab)
    outsider = MembershipFactory(role=Role.OWNER)  # owner elsewhere
    create(lab, "theirs", project=outsider.project, actor=outsider.user)
    client.force_login(outsider.user)

    for url in [list_url(lab), detail_url(lab), detail_url(lab, query="?a=1&b=1")]:
        assert client.get(url).status_code == 404
    assert client.post(detail_url(lab), {"var_name": "Ada"}).status_code == 404
    assert fragment(client, detail_url(lab), "prompt-diff").status_code == 404

    client.force_login(lab.editor)
    assert client.get(detail_url(lab, "theirs")).status_code == 404  # another project's prompt under this project
    assert client.get(f"/projects/{outsider.project.slug}/prompts/theirs/").status_code == 404
    assert client.get(detail_url(lab, "nope")).status_code == 404
    assert client.get("/projects/no-such-project/prompts/").status_code == 404


def test_a_removed_member_loses_access(lab, client):
    create(lab)
    Membership.objects.filter(user=lab.viewer).delete()
    client.force_login(lab.viewer)

    assert client.get(list_url(lab)).status_code == 404
    assert client.get(detail_url(lab)).status_code == 404


@pytest.mark.parametrize("role, staff, sees_admin", [
    (Role.VIEWER, True, False), (Role.EDITOR, False, False), (Role.EDITOR, True, True), (Role.OWNER, True, True),
])  # fmt: skip
def test_admin_links_only_for_editors_who_can_use_the_admin(lab, client, role, staff, sees_admin):
    prompt = create(lab)
    member = MembershipFactory(project=lab.project, role=role, user__is_staff=staff)
    client.force_login(member.user)

    page = soup(client.get(detail_url(lab)))

    assert page.select_one("#open-playground")["href"] == f"/projects/{lab.project.slug}/playground/?prompt={prompt.pk}"
    admin_links = [a["href"] for a in page.select("#edit-in-admin, #versions-in-admin")]
    assert admin_links == ([f"/admin/prompts/prompt/{prompt.pk}/change/", f"/admin/prompts/prompt/{prompt.pk}/versions/"] if sees_admin else [])
    assert bool(page.select("#prompt-read-only")) == (role == Role.VIEWER)
    assert bool(soup(client.get(list_url(lab))).select("#add-prompt")) == sees_admin


def test_a_superuser_sees_every_project(lab, client):
    create(lab)
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    assert client.get(detail_url(lab)).status_code == 200
    assert soup(client.get(list_url(lab))).select_one("#add-prompt")


def test_pages_declare_their_methods(lab, client):
    create(lab)
    client.force_login(lab.editor)

    assert client.post(list_url(lab)).status_code == 405
    assert client.put(detail_url(lab)).status_code == 405
    assert client.delete(detail_url(lab)).status_code == 405
