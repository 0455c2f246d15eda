"""How long a refused template takes to be refused, and how much it allocates on the way.

The sandbox refuses the escapes and resource bombs of the security corpus
(tests/prompts/test_render_security.py) with a reason; this measures what each refusal
costs, with the render time limit at the corpus's 0.5 s. Rows: (a) the slowest refusal
against a render the time limit stops (nested loops that print nothing), about 1x when no
case outlives the limit; (b) the highest peak of Python allocations (tracemalloc) of any
refusal against the peak of a render that builds a list of 160,000 items (near the largest
a template may), about 1x when no bomb allocates more than a prompt may.
"""

import time
import tracemalloc

from django.test import override_settings

from bench.timing import Comparison
from prompts.rendering import RenderError, render_template
from tests.prompts.test_render_security import CORPUS, TIMEOUT, doublings, variables

STOPPED_BY_THE_TIME_LIMIT = "nested-range-loops-no-output"
# The corpus's list-plus-doublings one doubling short of its refusal: a list of 160,000 items,
# near the largest a template may build.
LARGEST_ALLOWED = doublings("[0] * 5000", "+", 5)


def run() -> list[Comparison]:
    with override_settings(PROMPT_RENDER_TIMEOUT_SECONDS=TIMEOUT):
        seconds = {case.id: _refused(case, _seconds) for case in CORPUS}
        peaks = {case.id: _refused(case, _peak) for case in CORPUS}
        largest, refusal = _peak(LARGEST_ALLOWED)
    if refusal:
        raise RuntimeError(f"the 160,000-item list was refused: {refusal}")
    baseline = seconds.pop(STOPPED_BY_THE_TIME_LIMIT)
    slowest, highest = max(seconds, key=seconds.get), max(peaks, key=peaks.get)
    return [
        Comparison("slowest refused template vs one stopped by the time limit", "s", seconds[slowest], baseline, lower_is_better=True,
                   note=f"the slowest of the other {len(seconds)} cases is {slowest}; the time limit is {TIMEOUT:g} s."),
        Comparison("refused template's peak memory vs a 160,000-item list", "MB", peaks[highest] / 1e6, largest / 1e6,
                   lower_is_better=True, note=f"the highest peak is {highest}'s."),
    ]  # fmt: skip


def _refused(case, measure) -> float:
    """What `measure` reads of the case's render, which must be refused for the reason the corpus gives."""
    figure, refusal = measure(case.template)
    if case.fragment not in refusal:
        raise RuntimeError(f"{case.id} was not refused as the corpus says: {refusal or 'it rendered'}")
    return figure


def _seconds(template: str) -> tuple[float, str]:
    started = time.perf_counter()
    refusal = _render(template)
    return time.perf_counter() - started, refusal


def _peak(template: str) -> tuple[int, str]:
    tracemalloc.start()
    try:
        refusal = _render(template)
        return tracemalloc.get_traced_memory()[1], refusal
    finally:
        tracemalloc.stop()


def _render(template: str) -> str:
    """Why the render was refused, or "" when it was not."""
    try:
        render_template(template, variables(), project_id=0)
    except RenderError as error:
        return error.message
    return ""
