"""How benchmarks time things and what they hand back to bench/run.py.

A benchmark compares a measurement with a baseline timed in the same process, in
alternating rounds, so the ratio means much the same on a laptop and on a CI machine;
absolute rates are printed only to read beside it.
"""

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """One row of the table: a figure measured beside the baseline it is judged against.

    Figures are rates (higher is better, e.g. req/s) unless `lower_is_better` marks them
    as costs (ms per call, seconds, MB).
    """

    name: str
    unit: str
    measured: float
    baseline: float
    note: str = ""
    lower_is_better: bool = False

    @property
    def ratio(self) -> float:
        """How many times the baseline's cost: 1.0 means the measured thing costs nothing extra."""
        return self.measured / self.baseline if self.lower_is_better else self.baseline / self.measured


def rates(
    measured: Callable[[], object],
    baseline: Callable[[], object],
    *,
    seconds: float = 2.5,
    rounds: int = 5,
    warmup: float = 0.3,
) -> tuple[float, float]:
    """Call each operation for about `seconds` and return both best rates, in calls per second.

    The warm-up keeps one-off costs (lazy imports, middleware loading, first queries) out
    of the figures and sizes the rounds. Rounds alternate between the two operations, so
    a burst of load from other processes hits both sides instead of whichever ran second;
    each side's fastest round counts, as timeit advises, because load only ever slows.
    """
    operations = (measured, baseline)
    counts = [max(1, round(seconds / rounds / _seconds_per_call(op, warmup))) for op in operations]
    best = [0.0, 0.0]
    for _ in range(rounds):
        for side, (operation, count) in enumerate(zip(operations, counts)):
            gc.collect()  # so garbage left by the previous round is not collected on this one's clock
            started = time.perf_counter()
            for _ in range(count):
                operation()
            best[side] = max(best[side], count / (time.perf_counter() - started))
    return best[0], best[1]


def _seconds_per_call(operation: Callable[[], object], warmup: float) -> float:
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < warmup:
        operation()
        calls += 1
    return (time.perf_counter() - started) / calls
