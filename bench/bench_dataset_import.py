"""How much memory a dataset import takes as the file grows.

An import streams: it reads the file a line at a time and saves items in batches of 1,000
inside one transaction, so what it holds should not depend on the file's length. (Saving
every item at the end held 57 MB more at 50,000 rows; reading the whole file first, 74 MB.)
Each size is imported in a fresh interpreter on the bench database, after a small warm-up
import: first with the resident set sampled from /proc every 2 ms (SQLite's and the driver's
C allocations included), then again under tracemalloc (which slows Django's bulk_create about
7x, so it runs apart from the resident-set import). Rows: each figure at 50,000 rows against
the same at 5,000; about 1x means memory does not grow with the file, holding every row
would show about 10x.
"""

import os
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection

from bench.timing import Comparison
from experiments import datasets
from promptlab.accounts import services as account_services
from tests.conftest import database_url_for

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 5_000, 50_000
PROBE = """
import sys
import django; django.setup()
from bench.bench_dataset_import import measure
print(*measure(int(sys.argv[1])))
"""


def run() -> list[Comparison]:
    env = {**os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), "LOG_LEVEL": "WARNING", "DJANGO_DEBUG": "0"}
    figures = {}
    for rows in (SMALL, LARGE):
        probe = subprocess.run([sys.executable, "-c", PROBE, str(rows)], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        figures[rows] = [float(figure) for figure in probe.stdout.split()[-3:]]
    (small_resident, small_traced, _), (large_resident, large_traced, large_file) = figures[SMALL], figures[LARGE]
    return [
        Comparison(
            f"dataset import resident growth: {LARGE:,} vs {SMALL:,} rows", "MB", large_resident, small_resident, lower_is_better=True,
            note=f"the {LARGE:,}-row file is {large_file:.1f} MB; 1x: memory does not grow with the file, 10x: it holds every row.",
        ),
        Comparison(f"dataset import traced peak: {LARGE:,} vs {SMALL:,} rows", "MB", large_traced, small_traced, lower_is_better=True),
    ]  # fmt: skip


def measure(rows: int) -> tuple[float, float, float]:
    """In a fresh interpreter: (resident-set growth, traced peak, file size) in MB for an import of `rows` rows."""
    user = get_user_model().objects.create_user(username=f"bench-import-{rows}", email=f"bench-import-{rows}@example.com")
    project = account_services.project_create(slug=f"bench-import-{rows}", owner=user)

    def import_into(name: str, path: Path) -> int:
        dataset = datasets.dataset_create(project=project, actor=user, name=name)
        with path.open("rb") as file:
            return datasets.dataset_import(dataset=dataset, actor=user, file=file, format="csv")

    with tempfile.TemporaryDirectory(prefix="promptlab-bench-import-") as folder:
        path = _write_csv(Path(folder) / "items.csv", rows)
        import_into("warm-up", _write_csv(Path(folder) / "warm-up.csv", 100))  # one-off costs: imports, first queries
        watch = _ResidentPeak()
        watch.start()
        added = [import_into("resident", path)]
        resident = watch.growth()
        tracemalloc.start()
        try:
            added.append(import_into("traced", path))
            _, traced = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        if added != [rows, rows]:
            raise RuntimeError(f"imported {added} of {rows} rows")
        return resident / 1e6, traced / 1e6, path.stat().st_size / 1e6


def _write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("question,context,expected,meta.source\n")
        for n in range(rows):
            out.write(f"What is item {n}?,Context for item {n} with some padding text,Answer {n},gen-{n % 7}\n")
    return path


class _ResidentPeak(threading.Thread):
    """Samples the process's resident set size every 2 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_bytes = self.peak = self._resident()
        self.done = threading.Event()

    @staticmethod
    def _resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def run(self):
        while not self.done.wait(0.002):
            self.peak = max(self.peak, self._resident())

    def growth(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, self._resident()) - self.start_bytes
