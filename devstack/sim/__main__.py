"""`python -m devstack.sim --schedules N --seed S [--mutate NAME] [--poll SECONDS]`: run N
schedules from seed S (one in six follows the chain: RELAYER_RUN_SECONDS > 0); print each
failing seed with its schedule (it replays exactly: `--schedules 1 --seed`)."""

from __future__ import annotations

import argparse
import sys
import time

from devstack.sim.simulation import MUTATIONS, Result, follow_line, run_schedules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.sim", description=__doc__)
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutate", choices=sorted(MUTATIONS), help="put back a known defect")
    parser.add_argument("--all", action="store_true", help="go on after a failing seed")
    parser.add_argument("--trace", action="store_true", help="print every schedule")
    parser.add_argument(
        "--poll",
        type=float,
        help="RELAYER_POLL_INTERVAL of the follow schedules (default: drawn from each seed)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    steps = checks = 0
    covered: dict[str, int] = {}

    def each(result: Result) -> None:
        nonlocal steps, checks
        steps += result.steps
        checks += result.checks
        for what, n in result.covered.items():
            covered[what] = covered.get(what, 0) + n
        if args.trace:
            print(result.report())

    polls = (args.poll,) if args.poll else None
    failing = run_schedules(args.seed, args.schedules, args.mutate, not args.all, each, polls)
    elapsed = time.monotonic() - started
    for result in failing:
        print(result.report())
    ran = failing[-1].seed - args.seed + 1 if failing and not args.all else args.schedules
    print(
        f"{ran} schedules from seed {args.seed}"
        + (f" with mutation {args.mutate}" if args.mutate else "")
        + f": {len(failing)} failing, {steps} steps, {checks} invariant checks, {elapsed:.1f} s "
        f"({ran / elapsed:.0f} schedules/s)"
    )
    if covered.get("follow"):
        print(follow_line(covered))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
