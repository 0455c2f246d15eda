"""manage.py run_experiment: run an experiment to its verdict, at a terminal or in a CI job.

It lives in evaluations because its answer is the scores and verdicts; the calls are the
experiments layer's. The exit status:

0  every run answered, the gate passed (for a gate experiment), and every pass rate checked
   by --fail-under is at least that rate;
1  a run failed, the gate did not pass, or a pass rate is under --fail-under (each reason is
   printed);
2  no verdict: no such experiment or variant, a refused start, a cancelled experiment, or
   --timeout ran out.
"""

import sys
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from evaluations import comparison, gates, progress
from evaluations import services as evaluation_services
from experiments import services
from experiments.models import Experiment, ExperimentStatus, RunStatus
from promptlab.errors import DomainError
from promptlab.money import usd

BAR = 30
NO_VERDICT = 2
INLINE_DEFAULT_BUDGET_S = 7 * 86400  # without --timeout, an inline drain never hands over to a worker in practice


class Command(BaseCommand):
    help = (
        "Start an experiment if it is a draft (after printing its forecast), show its progress until its calls are "
        "made and its scores are in, then print each variant's pass rate and the verdicts. Exits 1 if a run "
        "failed, its gate did not pass or a pass rate is under --fail-under; 2 when there is no verdict."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment_id", type=int)
        parser.add_argument("--inline", action="store_true",
                            help="Make the calls and score the runs in this process instead of waiting for workers.")  # fmt: skip
        parser.add_argument("--timeout", type=float, default=None, help="Give up waiting after this many seconds (exit 2).")
        parser.add_argument("--fail-under", type=float, default=None, metavar="RATE",
                            help="Exit 1 if a variant's pass rate is under RATE (0 to 1: 0.9 is 90%%).")  # fmt: skip
        parser.add_argument("--variant", default=None, metavar="NAME",
                            help="Check only this variant's pass rate against --fail-under (default: every variant's).")  # fmt: skip

    def handle(self, *args, experiment_id, inline, timeout, fail_under, variant, **options):
        if fail_under is not None and not 0 <= fail_under <= 1:
            raise CommandError(f"--fail-under is a pass rate from 0 to 1 (0.9 is 90%), not {fail_under:g}.", returncode=NO_VERDICT)
        if variant is not None and fail_under is None:
            raise CommandError("--variant says whose pass rate --fail-under checks: give --fail-under too.", returncode=NO_VERDICT)
        experiment = Experiment.objects.filter(pk=experiment_id).first()
        if experiment is None:
            raise CommandError(f"No experiment with id {experiment_id}.", returncode=NO_VERDICT)
        names = dict(experiment.variants.values_list("pk", "name"))
        if variant is not None and variant not in names.values():
            raise CommandError(f"The experiment has no variant {variant!r}; its variants are {', '.join(map(repr, names.values()))}.",
                               returncode=NO_VERDICT)  # fmt: skip
        self._start(experiment)
        errors = []
        in_process = threading.Thread(target=_run_inline, args=[experiment.pk, timeout, errors], daemon=True) if inline else None
        if in_process:
            in_process.start()
        counts = self._wait(experiment, timeout=timeout, inline=inline, errors=errors)
        if in_process:
            in_process.join(timeout=30)
        if experiment.status == ExperimentStatus.CANCELLED:
            raise CommandError("The experiment was cancelled: no verdict.", returncode=NO_VERDICT)
        problems = self._verdict(experiment, names, fail_under=fail_under, variant=variant)
        if counts["failed"]:
            problems.insert(0, f"{counts['failed']} run(s) failed; `retry errors` runs only those again.")
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            sys.exit(1)

    def _start(self, experiment: Experiment) -> None:
        if experiment.status != ExperimentStatus.DRAFT:
            return
        try:
            forecast = services.experiment_forecast(experiment)
            cost = usd(forecast.usd) + (f" ({'; '.join(forecast.unpriced)})" if forecast.unpriced else "")
            self.stdout.write(f"{forecast.calls} calls, about {forecast.prompt_tokens + forecast.completion_tokens} tokens, {cost}.")
            services.experiment_start(experiment=experiment, actor=None)
        except DomainError as exc:
            raise CommandError(exc.message, returncode=NO_VERDICT) from None

    def _wait(self, experiment: Experiment, *, timeout: float | None, inline: bool, errors: list) -> dict:
        """Show the calls, then the scoring, until the experiment is finished or cancelled; the run counts."""
        deadline = time.monotonic() + timeout if timeout else None
        scoring_shown = False
        while True:
            experiment.refresh_from_db()
            counts = services.experiment_counts(experiment)
            if experiment.status == ExperimentStatus.SCORING or (scoring_shown and experiment.status == ExperimentStatus.FINISHED):
                if not scoring_shown:
                    self.stdout.write("")  # the calls' bar stays; the scoring's goes below it
                    scoring_shown = True
                scoring = progress.scoring_progress(experiment)
                line = f"{_bar(scoring.scored, scoring.to_score)} scoring {scoring.scored}/{scoring.to_score} answered runs"
            else:
                over = counts["total"] - counts["pending"] - counts["running"]
                line = (f"{_bar(over, counts['total'])} {over}/{counts['total']} done {counts['done']} failed {counts['failed']} "
                        f"skipped {counts['skipped']} {usd(counts['spent_usd'])}")  # fmt: skip
            self.stdout.write(f"\r{line}", ending="")
            self.stdout.flush()
            if experiment.status in (ExperimentStatus.FINISHED, ExperimentStatus.CANCELLED):
                self.stdout.write("")
                return counts
            if errors:
                self.stdout.write("")
                raise CommandError(f"Running the experiment in this process failed: {errors[0]}", returncode=NO_VERDICT)
            if deadline and time.monotonic() > deadline:
                self.stdout.write("")
                waiting = "scores" if experiment.status == ExperimentStatus.SCORING else "calls"
                hint = "" if inline else ": is a worker running (celery -A promptlab worker)? Or use --inline"
                raise CommandError(f"Timed out waiting for the {waiting}{hint}.", returncode=NO_VERDICT)
            time.sleep(0.5)

    def _verdict(self, experiment: Experiment, names: dict, *, fail_under: float | None, variant: str | None) -> list[str]:
        """Print the pass rates, verdicts and gate; what is not met, in words."""
        result = comparison.experiment_comparison(experiment=experiment)
        problems = []
        self.stdout.write("Pass rates:")
        for each in result.variants:
            summary, name = each.summary, names[each.id]
            rate = summary.pass_rate.estimate if summary.pass_rate else None
            shown = f"{rate:.1%} ({summary.passed}/{summary.graded} graded runs)" if rate is not None else "none (no graded run)"
            self.stdout.write(f"  {each.name}: {shown}")
            if fail_under is not None and variant in (None, name):
                if rate is None:
                    problems.append(f"Variant {name!r} has no graded run: nothing to hold against --fail-under {fail_under:g}.")
                elif rate < fail_under:
                    problems.append(f"Variant {name!r} passes {rate:.1%} of its graded runs, under --fail-under {fail_under:.1%}.")
        if result.pairs:
            self.stdout.write("Verdicts:")
            for pair in result.pairs:
                self.stdout.write(f"  {pair.a.name} vs {pair.b.name}: {pair.headline}")
        gate = gates.experiment_gate(experiment=experiment)
        if gate is not None:
            self.stdout.write(f"Gate: {'passed' if gate.passed else 'not passed'}: {gate.reason}.")
            if not gate.passed:
                problems.append(f"The promotion gate did not pass this experiment's version: {gate.reason}.")
        return problems


def _bar(part: int, whole: int) -> str:
    filled = BAR * part // max(whole, 1)
    return f"[{'#' * filled}{'.' * (BAR - filled)}]"


def _run_inline(experiment_id: int, timeout: float | None, errors: list) -> None:
    """Make the calls, then score every answered run, in this thread: no worker needed."""
    try:
        services.experiment_drain(experiment_id=experiment_id, time_budget_s=timeout or INLINE_DEFAULT_BUDGET_S)
        answered = Experiment.objects.get(pk=experiment_id).runs.filter(status=RunStatus.DONE).order_by("pk").values_list("pk", flat=True)
        evaluation_services.score_runs(run_ids=list(answered), time_budget_s=float("inf"))
    except Exception as exc:  # reported by the waiting loop, which then stops
        errors.append(exc)
    finally:
        connection.close()  # the thread's own connection; nothing else would close it
