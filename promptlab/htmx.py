"""Pages whose URL also answers htmx with a fragment of the page: the one place that decides
which of the two a request gets.

htmx's history restore (Back after its history cache missed) sends `HX-Request: true` like
any htmx request, but puts the answer in place of the whole page, so it gets the page. The
answer differs by request headers, so it says which in `Vary`: otherwise a browser or proxy
cache could serve the fragment for a page load of the same URL."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

# Every header wants_fragment reads.
VARY = ["HX-Request", "HX-Target", "HX-History-Restore-Request"]


def wants_fragment(request: HttpRequest, target: str | None = None) -> bool:
    """Whether the request is htmx swapping a fragment (not restoring history), and, with a
    `target`, swapping the element with that id. Views ask it to skip work only the page needs."""
    htmx = request.htmx
    return bool(htmx) and not htmx.history_restore_request and target in (None, htmx.target)


def page_or_fragment(
    request: HttpRequest, page_template: str, context: dict, *,
    fragment_template: str | None = None, target: str | None = None, status: int = 200,
) -> HttpResponse:  # fmt: skip
    """`fragment_template` when `wants_fragment(request, target)`, else the whole page."""
    fragment = fragment_template is not None and wants_fragment(request, target)
    response = render(request, fragment_template if fragment else page_template, context, status=status)
    patch_vary_headers(response, VARY)
    return response
