"""Run every bench/bench_*.py and print one table of ratios against same-run baselines.

`make bench` runs this. Each benchmark module has `run() -> list[Comparison]` (see
bench/timing.py). The database is a throwaway one made for this run, so a benchmark can
write freely and never touches real data: a SQLite file in a temporary directory by
default, or, with DATABASE_URL set, a test database created beside the real one.
"""

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promptlab-bench-") as var_dir:
        # Settings read the environment when imported, so this comes before Django. The
        # temporary VAR_DIR holds the SQLite file and the filesystem broker's folders.
        os.environ["PROMPTLAB_VAR_DIR"] = var_dir
        os.environ["DJANGO_SETTINGS_MODULE"] = "promptlab.settings"
        sys.path.insert(0, str(ROOT))

        import django
        from django.test.utils import setup_test_environment, teardown_test_environment

        django.setup()
        # DEBUG off (as in production, and no query log growing during a run), "testserver"
        # allowed for django.test.Client, and outgoing mail kept in memory.
        setup_test_environment()
        try:
            with _throwaway_database() as database:
                _print_setup(database)
                comparisons = [row for module in _discover() for row in module.run()]
        finally:
            teardown_test_environment()
    _print_table(comparisons)
    print(f"\n{len(comparisons)} benchmark(s) in {time.perf_counter() - started:.1f} s")


@contextmanager
def _throwaway_database() -> Iterator[str]:
    """Create and migrate a database for this run only, and drop it afterwards."""
    from django.db import connection

    if connection.vendor != "sqlite":
        # Not the test suite's test_<name>: a bench run must not clobber a test run beside it.
        connection.settings_dict["TEST"]["NAME"] = f"test_{connection.settings_dict['NAME']}_bench"
    real_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(real_name, verbosity=0)


def _discover() -> list[ModuleType]:
    """Every bench/bench_*.py in name order, or only those named on the command line
    (`bench/run.py gateway render`); imported after django.setup() as they use models."""
    paths = sorted(BENCH_DIR.glob("bench_*.py"))
    if wanted := sys.argv[1:]:
        if unknown := set(wanted) - {path.stem.removeprefix("bench_") for path in paths}:
            raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))}")
        paths = [path for path in paths if path.stem.removeprefix("bench_") in wanted]
    return [importlib.import_module(f"bench.{path.stem}") for path in paths]


def _print_setup(database: str) -> None:
    import django
    from django.conf import settings
    from django.db import connection

    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"promptlab benchmarks: Python {sys.version.split()[0]}, Django {django.get_version()}")
    print(f"database: {connection.vendor} {database} (throwaway), cache: {cache}\n")


def _print_table(comparisons: list) -> None:
    header = ("benchmark", "measured", "baseline", "ratio")
    rows = [(c.name, _figure(c.measured, c.unit), _figure(c.baseline, c.unit), f"{c.ratio:.2f}x") for c in comparisons]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        name, *figures = row
        print("  ".join([name.ljust(widths[0]), *(f.rjust(w) for f, w in zip(figures, widths[1:]))]))
    print("\nratio: how many times the baseline's cost (1.00x = no extra cost).")
    for c in comparisons:
        if c.note:
            print(f"- {c.name}: {c.note}")


def _figure(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.2f} {unit}"


if __name__ == "__main__":
    main()
