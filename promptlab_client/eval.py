"""promptlab-eval: gate a service's CI on an experiment's verdict, through promptlab's REST API.

    export PROMPTLAB_API_KEY=pl_...          # scopes: read, and run to start or create one
    promptlab-eval --url https://promptlab.example.com --project support --experiment 12 --fail-under 0.9
    python -m promptlab_client.eval ...      # the same without installing: from a checkout, or the copied folder

It starts the experiment if it is a draft (or creates one from --create FILE, the JSON body of
POST /api/v1/experiments/, and starts it), waits until it is finished (its calls made and its
scores in), prints each variant's pass rate and each pair's verdict, and exits with

0  every run answered, the gate passed (when promptlab reports one), and every pass rate
   checked by --fail-under (each variant's, or only --variant's) is at least RATE;
1  a run failed, the gate did not pass, or a pass rate is under --fail-under (each reason is printed);
2  no verdict: bad arguments, promptlab refused or could not be reached, the experiment was
   cancelled, or --timeout ran out.

Standard library and httpx only, like the client.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from promptlab_client import PromptlabClient, PromptlabError, PromptlabUnavailable

MET, NOT_MET, NO_VERDICT = 0, 1, 2


class NoVerdict(Exception):
    """The experiment cannot give a verdict to check (cancelled, out of time)."""


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    key = os.environ.get("PROMPTLAB_API_KEY")
    if args.fail_under is not None and not 0 <= args.fail_under <= 1:
        return _no_verdict(f"--fail-under is a pass rate from 0 to 1 (0.9 is 90%), not {args.fail_under:g}")
    if args.variant is not None and args.fail_under is None:
        return _no_verdict("--variant says whose pass rate --fail-under checks: give --fail-under too")
    if not key:
        return _no_verdict("set PROMPTLAB_API_KEY to a key of the project (scopes: read, and run to start an experiment)")
    with PromptlabClient(args.url, key, project=args.project, invoke_timeout=args.request_timeout) as client:
        try:
            experiment = _experiment(client, args)
            names = [each["name"] for each in experiment["variants"]]
            if args.variant is not None and args.variant not in names:
                return _no_verdict(f"the experiment has no variant {args.variant!r}; its variants are {', '.join(map(repr, names))}")
            if experiment["status"] == "draft":
                experiment = client.experiment_start(experiment["id"])
            print(f"Experiment {experiment['id']} ({experiment['name']}): {args.url.rstrip('/')}/experiments/{experiment['id']}/comparison/")
            experiment = wait(client, experiment["id"], timeout=args.timeout, interval=args.interval)
            problems = verdict(experiment, client.comparison(experiment["id"]), fail_under=args.fail_under, variant=args.variant)
        except (PromptlabError, NoVerdict, OSError, ValueError) as exc:  # ValueError: a --create file that is not JSON
            return _no_verdict(str(exc))
    for problem in problems:
        print(problem, file=sys.stderr)
    return NOT_MET if problems else MET


def _no_verdict(why: str) -> int:
    print(f"promptlab-eval: no verdict: {why}.", file=sys.stderr)
    return NO_VERDICT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptlab-eval", description="Run a promptlab experiment to its verdict and exit non-zero when it is not met.",
        epilog="Exit status: 0 met, 1 not met (a failed run, the gate, --fail-under), 2 no verdict. The API key is read from PROMPTLAB_API_KEY.",
    )  # fmt: skip
    parser.add_argument("--url", required=True, help="promptlab's address, e.g. https://promptlab.example.com")
    parser.add_argument("--project", help="The project's slug: a key of another project is refused.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", type=int, metavar="ID", help="The experiment; started if it is a draft.")
    which.add_argument("--create", metavar="FILE", help="Create an experiment from this JSON body of POST /api/v1/experiments/ (- for stdin) and start it.")  # fmt: skip
    parser.add_argument("--fail-under", type=float, metavar="RATE", help="Exit 1 if a pass rate is under RATE (0 to 1: 0.9 is 90%%).")
    parser.add_argument("--variant", metavar="NAME", help="Check only this variant's pass rate against --fail-under.")
    parser.add_argument("--timeout", type=float, default=3600, help="Give up waiting after this many seconds (default 3600; exit 2).")
    parser.add_argument("--interval", type=float, default=5, help="Seconds between two looks at the experiment (default 5).")
    parser.add_argument("--request-timeout", type=float, default=60, help="Seconds one request may take (default 60).")
    return parser


def _experiment(client: PromptlabClient, args) -> dict:
    if args.create:
        with (sys.stdin if args.create == "-" else open(args.create, encoding="utf-8")) as file:
            return client.experiment_create(json.load(file))
    return client.experiment(args.experiment)


def wait(client: PromptlabClient, experiment_id: int, *, timeout: float | None, interval: float) -> dict:
    """The experiment once it is finished, printing its progress as it changes. promptlab being
    briefly unreachable (a deploy, a 503) is waited out; a refusal is raised."""
    deadline = time.monotonic() + timeout if timeout else None
    shown = None
    while True:
        try:
            experiment = client.experiment(experiment_id)
        except PromptlabUnavailable as exc:
            print(f"promptlab is unavailable, still waiting: {exc}", flush=True)
        else:
            if (line := _progress(experiment)) != shown:
                print(line, flush=True)
                shown = line
            if experiment["status"] == "cancelled":
                raise NoVerdict(f"experiment {experiment_id} was cancelled")
            if experiment["status"] == "finished":
                return experiment
        if deadline is not None and time.monotonic() > deadline:
            raise NoVerdict(f"experiment {experiment_id} is not finished after {timeout:g} s ({shown or 'promptlab unreachable'})")
        time.sleep(interval)


def _progress(experiment: dict) -> str:
    counts, scoring = experiment["counts"], experiment["scoring"]
    over = counts["total"] - counts["pending"] - counts["running"]
    return (f"{experiment['status']}: {over}/{counts['total']} runs over ({counts['failed']} failed), "
            f"{scoring['scored']}/{scoring['to_score']} answered runs scored")  # fmt: skip


def verdict(experiment: dict, comparison: dict, *, fail_under: float | None = None, variant: str | None = None) -> list[str]:
    """Print the pass rates, verdicts and gate of a finished experiment; what is not met, in words."""
    names = {each["id"]: each["name"] for each in experiment["variants"]}
    problems = [f"{experiment['counts']['failed']} run(s) failed."] if experiment["counts"]["failed"] else []
    print("Pass rates:")
    for each in comparison["variants"]:
        name, rate = names.get(each["id"], each["name"]), each["pass_rate"] and each["pass_rate"]["estimate"]
        shown = f"{rate:.1%} ({each['passed']}/{each['graded']} graded runs)" if rate is not None else "none (no graded run)"
        print(f"  {each['name']}: {shown}")
        if fail_under is not None and variant in (None, name):
            if rate is None:
                problems.append(f"Variant {name!r} has no graded run: nothing to hold against --fail-under {fail_under:g}.")
            elif rate < fail_under:
                problems.append(f"Variant {name!r} passes {rate:.1%} of its graded runs, under --fail-under {fail_under:.1%}.")
    if comparison["pairs"]:
        print("Verdicts:")
        for pair in comparison["pairs"]:
            print(f"  {pair['a']} vs {pair['b']}: {pair['pass_verdict']}")
    if gate := comparison.get("gate"):
        print(f"Gate: {'passed' if gate['passed'] else 'not passed'}: {gate['reason']}.")
        if not gate["passed"]:
            problems.append(f"The promotion gate did not pass: {gate['reason']}.")
    return problems


if __name__ == "__main__":
    sys.exit(main())
