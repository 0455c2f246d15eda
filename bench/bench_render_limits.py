"""How long a refused template takes to be refused, and how much it allocates on the way.

Two corpora, rendered as the tests render them. The escapes and operator bombs of the
security corpus (tests/prompts/test_render_security.py), with the render time limit at the
corpus's 0.5 s: (a) the slowest refusal against a render the time limit stops (nested loops
that print nothing), about 1x when no case outlives the limit; (b) the highest peak of
Python allocations (tracemalloc) of any refusal against the peak of a render that builds a
list of 28,000 items (near the largest a template may), about 1x when no bomb allocates more
than a prompt may.

The resource bombs (tests/prompts/test_render_bombs.py), with the default limits (2 s,
200,000 characters, 10,000 items): each must be refused as the corpus says or render what
it says. A table prints each bomb's time and the growth of the process's resident set
(its kernel high-water mark, reset before each bomb) over what it was before the bomb.
Rows: (c) the slowest bomb against a render the time limit stops; target: every bomb
refused or answered within 3 s. (d) the largest resident growth of any bomb against that of
the largest render the limits allow (a 200,000-item list joined into 200,000 characters);
target: within 100 MB of the start.
"""

import gc
import re
import time
import tracemalloc

from django.test import override_settings

from bench.timing import Comparison
from prompts.rendering import RenderError, render_template
from tests.prompts import test_render_bombs as bombs
from tests.prompts.test_render_security import CORPUS, TIMEOUT, doublings, variables

STOPPED_BY_THE_TIME_LIMIT = "nested-range-loops-no-output"
# A list of 28,000 items, one doubling short of its refusal: near the largest a template may build.
LARGEST_ALLOWED = doublings("[0] * 3500", "+", 3)
LARGEST_ALLOWED_RENDER = "{{ (a ~ a)|list|join|length }}"  # 200,000 one-character items, joined
DEFAULT_LIMITS = {"PROMPT_RENDER_MAX_CHARS": 200_000, "PROMPT_RENDER_MAX_ITEMS": 10_000, "PROMPT_RENDER_TIMEOUT_SECONDS": 2.0}
TARGET_SECONDS, TARGET_MB = 3.0, 100.0


def run() -> list[Comparison]:
    with override_settings(PROMPT_RENDER_TIMEOUT_SECONDS=TIMEOUT):
        seconds = {case.id: _refused(case, _seconds) for case in CORPUS}
        peaks = {case.id: _refused(case, _peak) for case in CORPUS}
        largest, refusal = _peak(LARGEST_ALLOWED)
    if refusal:
        raise RuntimeError(f"the 28,000-item list was refused: {refusal}")
    baseline = seconds.pop(STOPPED_BY_THE_TIME_LIMIT)
    slowest, highest = max(seconds, key=seconds.get), max(peaks, key=peaks.get)
    with override_settings(**DEFAULT_LIMITS):
        start = _resident_mb()
        stopped = _bomb_figures(next(case.template for case in CORPUS if case.id == STOPPED_BY_THE_TIME_LIMIT), {})[1]
        allowed = _bomb_figures(LARGEST_ALLOWED_RENDER, bombs.variables())[2]
        figures = {bomb.id: _bomb(bomb) for bomb in bombs.BOMBS}
        overall = max(growth + before for _, _, growth, before in figures.values()) - start
    _print_bombs(figures)
    slowest_bomb = max(figures, key=lambda name: figures[name][1])
    fattest_bomb = max(figures, key=lambda name: figures[name][2])
    return [
        Comparison("slowest refused template vs one stopped by the time limit", "s", seconds[slowest], baseline, lower_is_better=True,
                   note=f"the slowest of the other {len(seconds)} cases is {slowest}; the time limit is {TIMEOUT:g} s."),
        Comparison("refused template's peak memory vs a 28,000-item list", "MB", peaks[highest] / 1e6, largest / 1e6,
                   lower_is_better=True, note=f"the highest peak is {highest}'s."),
        Comparison("slowest resource bomb vs a render stopped by the 2 s limit", "s", figures[slowest_bomb][1], stopped,
                   lower_is_better=True, note=f"{slowest_bomb}, of {len(figures)} bombs; target: every bomb within {TARGET_SECONDS:g} s."),
        Comparison("resource bomb's resident growth vs the largest allowed render", "MB", figures[fattest_bomb][2], allowed,
                   lower_is_better=True, note=f"{fattest_bomb}; the process grew {overall:.1f} MB over its start at most "
                   f"(target: within {TARGET_MB:g} MB)."),
    ]  # fmt: skip


# --- The escapes: time and Python allocations --------------------------------------------------


def _refused(case, measure) -> float:
    """What `measure` reads of the case's render, which must be refused for the reason the corpus gives."""
    figure, refusal = measure(case.template)
    if case.fragment not in refusal:
        raise RuntimeError(f"{case.id} was not refused as the corpus says: {refusal or 'it rendered'}")
    return figure


def _seconds(template: str) -> tuple[float, str]:
    started = time.perf_counter()
    refusal = _render(template, variables())[0]
    return time.perf_counter() - started, refusal


def _peak(template: str) -> tuple[int, str]:
    tracemalloc.start()
    try:
        refusal = _render(template, variables())[0]
        return tracemalloc.get_traced_memory()[1], refusal
    finally:
        tracemalloc.stop()


def _render(template: str, given: dict) -> tuple[str, str]:
    """(why the render was refused, or "" when it was not; what it rendered)."""
    try:
        return "", render_template(template, given, project_id=0)
    except RenderError as error:
        return error.message, ""


# --- The bombs: time and the process's resident set --------------------------------------------


def _bomb(bomb) -> tuple[str, float, float, float]:
    refusal, seconds, growth, before = _bomb_figures(bomb.template, bomb.variables())
    expected = bomb.refusal.replace(f"{TIMEOUT:g}s", f"{DEFAULT_LIMITS['PROMPT_RENDER_TIMEOUT_SECONDS']:g}s")
    if (expected not in refusal) if bomb.refusal else refusal:
        raise RuntimeError(f"{bomb.id} did not end as the corpus says: {refusal or 'it rendered'}")
    return refusal or "rendered", seconds, growth, before


def _bomb_figures(template: str, given: dict) -> tuple[str, float, float, float]:
    """(refusal, seconds, resident growth in MB over what the process held before, that in MB)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the resident high-water mark (VmHWM) to what is resident now
    before = _resident_mb()
    started = time.perf_counter()
    refusal, _ = _render(template, given)
    seconds = time.perf_counter() - started
    return refusal, seconds, _resident_mb("VmHWM") - before, before


def _resident_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)[1]) / 1024


def _print_bombs(figures: dict) -> None:
    width = max(map(len, figures))
    print(f"{'resource bomb'.ljust(width)}  seconds  resident MB  outcome")
    for name, (outcome, seconds, growth, _) in figures.items():
        print(f"{name.ljust(width)}  {seconds:7.2f}  {growth:11.1f}  {outcome[:70]}")
    print()
