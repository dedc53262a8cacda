"""The fault campaign in small (devstack/faults/campaign.py; `make faults` runs the large
one), so CI keeps the delivery guarantees of CONTRACT §7 from regressing.

One trial per scenario on one escrow history: SIGKILL at every named step of a run and at
random instants, overlapping runs, runs that stall or freeze past their lease, SIGTERM, a
misbehaving RPC provider, Firestore contention, Pub/Sub and Firestore stopped mid-run. And
one of each kind an outside audit found: big and odd events (on a chain of their own),
repeated logs, capped batches without blockTimestamp, reorganisations at the worst moments
(each on a fresh anvil), SIGTERM with a slow provider or a publish held on the wire, a run
frozen before recording, overlapping backfills, a Cloud Storage outage in a fleet. Each
trial ends with plain runs until the relayer has caught up; the verdict then compares the
chain's logs with what a subscriber received, what Firestore recorded and what every run did.
Every figure of VIOLATIONS must be 0; /status is checked after failed runs and after
recovery.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from devstack.faults.campaign import Campaign, Result, open_world, plan, table
from devstack.faults.launch import Zygote
from devstack.faults.scenarios import POINTS, STALL_POINTS
from devstack.faults.verdict import VIOLATIONS
from devstack.stack.services import Stack, start_anvil

pytestmark = pytest.mark.slow  # about 4 minutes: `make test` runs it, `make test-fast` not


@pytest.fixture(scope="module")
def campaign(stack: Stack) -> Iterator[Campaign]:
    """The world every trial relays (60 escrow events over 20 blocks) and a fork server."""
    with start_anvil() as anvil:
        launcher = Zygote()
        running = Campaign(open_world(stack, anvil.rpc_url, launcher), kills_per_trial=2)
        try:
            yield running
        finally:
            running.close()
            launcher.close()


def run_trials(campaign: Campaign, *patterns: str) -> list[Result]:
    """One trial of each scenario matching a pattern; every guarantee held in each."""
    jobs = [(scenario, 4242 + n) for n, (scenario, _) in enumerate(plan(1, list(patterns)))]
    results = campaign.run(jobs, workers=2)
    print("\n" + table(results))
    return held(results)


def held(results: list[Result]) -> list[Result]:
    """The results, once every guarantee is known to have held in each."""
    broken = {
        f"{r.scenario}: {v}": r.figures[v]
        for r in results
        for v in (*VIOLATIONS, "trial_errors")
        if r.figures[v]
    }
    findings = "\n".join(f"{r.scenario}: {f[:400]}" for r in results for f in r.findings)
    assert not broken, f"{broken}\n{findings}"
    return results


def figure(results: list[Result], name: str) -> int:
    return sum(r.figures[name] for r in results)


def test_sigkill_at_every_step_of_a_run_loses_nothing(campaign: Campaign) -> None:
    results = run_trials(campaign, "^crash@")

    assert {r.scenario for r in results} == {f"crash@{p}" for p in POINTS}
    for point in POINTS:  # every point was reached and killed the run at least once
        assert figure(results, f"kill@{point}") >= 1, point
    # Killed between Pub/Sub's acceptance and the commit: duplicates, all allowed by §7.4.
    assert figure(results, "dup_after_kill") >= 1
    assert figure(results, "lost") == 0


def test_random_kills_and_overlapping_runs(campaign: Campaign) -> None:
    results = run_trials(campaign, "^random_kills$", "^overlap")

    assert figure(results, "kill@random") >= 1
    assert figure(results, "outcome_skipped") >= 1  # the lease kept overlapping runs out


def test_runs_that_stall_or_freeze_past_their_lease_never_publish_after_losing_it(
    campaign: Campaign,
) -> None:
    # freeze: SIGSTOP with a publish request in flight, or at a random instant of publishing;
    # the run thaws after another has taken its lease over
    results = run_trials(campaign, "^stall@", "^freeze@(mid_publish|random)$")

    assert {r.scenario for r in results} == {
        *(f"stall@{p}" for p in STALL_POINTS),
        "freeze@mid_publish",
        "freeze@random",
    }
    assert figure(results, "stale_publishes") == 0  # no copy accepted after a takeover
    assert figure(results, "dup_after_stall") >= 1  # and the runs did publish before stalling


def test_sigterm_commits_what_was_published_and_releases_the_lease(campaign: Campaign) -> None:
    results = run_trials(campaign, "^sigterm$")

    assert figure(results, "sigterms") == 1


def test_a_misbehaving_rpc_provider_and_kills_during_eth_getlogs(campaign: Campaign) -> None:
    run_trials(campaign, "^rpc$")


def test_firestore_transaction_contention(campaign: Campaign) -> None:
    run_trials(campaign, "^contention$")


def test_pubsub_stopped_mid_run_and_restarted(campaign: Campaign) -> None:
    run_trials(campaign, "^pubsub_outage$")


def test_firestore_stopped_mid_run_and_restarted(campaign: Campaign) -> None:
    run_trials(campaign, "^firestore_outage$")


# The kinds of fault an outside audit found: one trial of each, all run together (two at a
# time) so that CI tries every kind in about 50 s; each test judges its own kind.
AUDIT = ("^odd_events$", "^rpc_repeats$", "^rpc_batch_caps$", "^reorg@", "^sigterm@slow_",
         "^freeze@before_record$", "^backfills$", "^fleet_storage_outage$")  # fmt: skip


@pytest.fixture(scope="module")
def audit(campaign: Campaign) -> list[Result]:
    jobs = [(scenario, 4242 + n) for n, (scenario, _) in enumerate(plan(1, list(AUDIT)))]
    results = campaign.run(jobs, workers=2)
    print("\n" + table(results))
    return results


def kind(audit: list[Result], pattern: str) -> list[Result]:
    """The audit trials of one kind, once every guarantee held in each."""
    results = [r for r in audit if re.search(pattern, r.scenario)]
    assert results, pattern
    return held(results)


def test_big_and_odd_events_arrive_whole_and_exact(audit: list[Result]) -> None:
    # 600 kB bytes, four 90,000-character CJK strings in one block, invalid UTF-8 (U+FFFD),
    # anonymous events; runs killed around publishing and recording
    results = kind(audit, "^odd_events$")

    assert figure(results, "events") == 10


def test_repeated_logs_never_make_two_messages_for_one_event(audit: list[Result]) -> None:
    kind(audit, "^rpc_repeats$")


def test_capped_batches_and_logs_without_timestamps(audit: list[Result]) -> None:
    kind(audit, "^rpc_batch_caps$")


def test_reorganisations_at_the_worst_moments_are_retracted_exactly_once(
    audit: list[Result],
) -> None:
    results = kind(audit, "^reorg@")

    assert figure(results, "orphans_published") >= 1  # the reorganisations did orphan events
    assert figure(results, "retracted") == figure(results, "orphans_published")


def test_sigterm_with_a_slow_provider_or_a_publish_held_on_the_wire(audit: list[Result]) -> None:
    results = kind(audit, "^sigterm@slow_")

    assert figure(results, "sigterms") == 2
    assert figure(results, "sigterm_interrupted") == 2


def test_a_run_frozen_before_recording_writes_nothing_after_the_takeover(
    audit: list[Result],
) -> None:
    results = kind(audit, "^freeze@before_record$")

    assert figure(results, "dup_after_stall") >= 1  # it had published before it froze


def test_overlapping_backfills_never_publish_a_block_twice(audit: list[Result]) -> None:
    results = kind(audit, "^backfills$")

    assert figure(results, "cli_exit_0") >= 2


def test_a_cloud_storage_outage_stops_only_the_relayer_that_needs_it(audit: list[Result]) -> None:
    results = kind(audit, "^fleet_storage_outage$")

    assert figure(results, "outcome_failed") >= 1  # the gs:// relayer, during the outage
