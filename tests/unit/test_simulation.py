"""The deterministic simulation of the relay protocol (devstack/sim): random schedules of
overlapping runs, crashes, freezes, stops, reorganisations and provider faults keep the
guarantees of CONTRACT §7 (one seed in six in follow mode, where the hand-over keeps §7.7's
coverage too; one in four in the factory world of RELAYER_FACTORY, where children are
created and emit the events); a seed replays exactly; and each known protocol defect put back
(`MUTATIONS`) is caught within a few hundred schedules."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable

import pytest

from devstack.sim.__main__ import main
from devstack.sim.simulation import MUTATIONS, Result, follow_line, run_schedule, run_schedules

SCHEDULES = 3000
WORKERS = 2


def _part(first: int) -> tuple[list[str], int, int, dict[str, int]]:
    """Failing reports, steps, invariant checks and what the follow schedules judged, of
    SCHEDULES // WORKERS schedules."""
    totals = [0, 0]
    covered: dict[str, int] = {}

    def each(result: Result) -> None:
        totals[0] += result.steps
        totals[1] += result.checks
        for what, n in result.covered.items():
            covered[what] = covered.get(what, 0) + n

    failing = run_schedules(first, SCHEDULES // WORKERS, stop_at_first=False, each=each)
    return [r.report() for r in failing], totals[0], totals[1], covered


def test_random_schedules_keep_the_guarantees(
    record_property: Callable[[str, object], None],
) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(WORKERS) as pool:
        parts = pool.map(_part, [i * (SCHEDULES // WORKERS) for i in range(WORKERS)])
    failing = [r for reports, _, _, _ in parts for r in reports]
    steps, checks = sum(p[1] for p in parts), sum(p[2] for p in parts)
    covered = {k: sum(p[3].get(k, 0) for p in parts) for k in {k for p in parts for k in p[3]}}
    # shown at the end of `make test` (tests/conftest.py)
    record_property("simulation", f"{SCHEDULES} schedules, {steps} steps, {checks} invariant "
                    f"checks, {len(failing)} failing; {follow_line(covered)}")  # fmt: skip
    assert checks > SCHEDULES * 10
    assert covered["follow"] == SCHEDULES // 6
    assert covered["handovers"] > covered["follow"] // 2 and covered["gaps"] > covered["follow"]
    assert covered["exits"] > 0 and covered["waits"] > 0 and covered["expiries"] > 0
    assert not failing, failing[0]


def test_a_seed_replays_exactly() -> None:
    first, second = run_schedule(77), run_schedule(77)
    assert first.trace == second.trace
    assert first.violations == second.violations
    assert first.steps == second.steps > 50
    assert run_schedule(78).trace != first.trace


EXPECTED = {
    "anchor": "§7.1",  # events of the new chain below the range never published
    "orphans": "of a replaced block still says",  # published records of replaced blocks
    "fencing": "§7.6",  # a fenced-out run's commit applied
    "release": "§7.3/7.5",  # a request in doubt accepted after the lease was released
    "handover": "§7.7 no look",  # the next run skipped: nobody looked until the one after
    "brief": "§7.7 no look",  # the next run gave up before the follower's end
    "children": "§7.1",  # the left-out child's events, after a restart, never published
    "late": "§7.1",  # a new child's first events never asked for
    "forget": "failed with no fault",  # a child kept from an abandoned look is found again
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_known_defect_is_caught(mutation: str) -> None:
    failing = run_schedules(0, 1500, mutation)
    assert failing, f"mutation {mutation} survived 1500 schedules"
    assert any(EXPECTED[mutation] in v for v in failing[0].violations), failing[0].report()


def test_the_command_prints_a_failing_seed_and_its_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--schedules", "30", "--seed", "0", "--mutate", "fencing"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^seed \d+: ", out, re.M) and "schedule:" in out and "r1 starts" in out
    assert main(["--schedules", "5", "--seed", "0"]) == 0
