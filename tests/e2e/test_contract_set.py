"""A changed CONTRACT_ADDRESS never starts a relayer over nor leaves a contract's history out
(function/core/identity.py), on anvil and the emulators."""

from __future__ import annotations

from devstack.chain.escrow import deploy_escrow
from harness import (
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_doc_or_none,
    run_cli,
    run_main,
)


def test_reordered_addresses_are_refused_before_anything_is_written(deployment: Deployment) -> None:
    other = deploy_escrow(deployment.w3)
    truth = deployment.make_activity(6, blocks=2) + deployment.make_activity_on(other, 4, blocks=2)
    first = run_main(deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{other}"))
    assert first.code == 0, first.lines
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)

    again = run_main(deployment.env(CONTRACT_ADDRESS=f"{other},{deployment.contract}"))

    assert again.code == 2, again.lines
    assert f"RELAYER_ID={deployment.relayer_id}" in again.summary["message"]
    assert relayer_doc_or_none(f"31337-{other.lower()}") is None  # nothing started over
    assert deployment.topic.pull_all() == []
    # What the message says to do works: the old state continues, nothing twice.
    fixed = run_main(
        deployment.env(
            CONTRACT_ADDRESS=f"{other},{deployment.contract}", RELAYER_ID=deployment.relayer_id
        )
    )
    assert fixed.code == 0, fixed.lines
    assert fixed.summary["events_published"] == 0


def test_an_added_contract_is_refused_until_accepted_and_its_history_backfilled(
    deployment: Deployment,
) -> None:
    """The README's way to add a contract to a running relayer, history included."""
    truth = deployment.make_activity(5, blocks=2)
    added = deploy_escrow(deployment.w3)
    history = deployment.make_activity_on(added, 4, blocks=2, seed=5)  # before it is added
    assert run_main(deployment.env()).code == 0
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)
    env = deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{added}")

    refused = run_main(env)
    assert refused.code == 2, refused.lines
    assert "relayer contracts --accept" in refused.summary["message"]
    assert relayer_doc(deployment.relayer_id)["contracts"] == [deployment.contract]
    shown = run_cli(env, "contracts")
    assert shown.code == 2 and added in shown.stdout, shown.lines

    accepted = run_cli(env, "contracts", "--accept")
    assert accepted.code == 0, accepted.lines
    assert relayer_doc(deployment.relayer_id)["contracts"] == [deployment.contract, added]
    later = deployment.make_activity_on(added, 3, blocks=1, seed=7)
    ran = run_main(env)
    assert ran.code == 0, ran.lines
    checkpoint = relayer_doc(deployment.relayer_id)["next_block"]
    # Its history: a backfill of the new address alone, under the same state.
    old = deployment.env(CONTRACT_ADDRESS=added, RELAYER_ID=deployment.relayer_id)
    filled = run_cli(old, "backfill", "--from-block", "0", "--to-block", str(checkpoint - 1))
    assert filled.code == 0, filled.lines
    got = payloads(deployment.topic.pull_all(at_least=len(later) + len(history)))
    assert_exactly_once(got, later + history)


def test_a_dropped_contract_is_said_and_the_run_goes_on(deployment: Deployment) -> None:
    other = deploy_escrow(deployment.w3)
    both = f"{deployment.contract},{other}"
    assert run_main(deployment.env(CONTRACT_ADDRESS=both)).code == 0
    run = run_main(deployment.env())
    assert run.code == 0, run.lines
    assert any(f"no longer lists {other}" in r.get("message", "") for r in run.records)
    assert relayer_doc(deployment.relayer_id)["contracts"] == [deployment.contract]


def test_a_run_refused_before_it_starts_records_its_failure_not_its_settings(
    deployment: Deployment,
) -> None:
    assert run_main(deployment.env()).code == 0
    other = deploy_escrow(deployment.w3)
    wrong = deployment.env(CHAIN_ID="5", CONTRACT_ADDRESS=other, RELAYER_ID=deployment.relayer_id)
    assert run_main(wrong).code == 2
    doc = relayer_doc(deployment.relayer_id)
    assert doc["last_run"]["outcome"] == "failed"
    assert (doc["chain_id"], doc["contracts"]) == (31337, [deployment.contract])


def test_a_second_relayer_of_the_same_contract_and_topic_starts_only_on_purpose(
    deployment: Deployment,
) -> None:
    """Under the default id a new relayer whose contracts another relayer of the topic
    relays looks like a reordered one: refused, and started on purpose with --new. Under a
    RELAYER_ID of its own it simply starts."""
    truth = deployment.make_activity(5, blocks=2)
    assert run_main(deployment.env()).code == 0
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)
    other = deploy_escrow(deployment.w3)
    second = deployment.env(
        CONTRACT_ADDRESS=f"{other},{deployment.contract}", RELAYER_EVENTS="EscrowCreated"
    )

    refused = run_main(second)
    assert refused.code == 2, refused.lines
    assert "relayer contracts --new" in refused.summary["message"]
    assert relayer_doc_or_none(f"31337-{other.lower()}") is None

    started = run_cli(second, "contracts", "--new")
    assert started.code == 0, started.lines
    ran = run_main(second)
    assert ran.code == 0, ran.lines
    created = [e for e in truth if e["event"] == "EscrowCreated"]
    assert ran.summary["events_published"] == len(created) > 0
    assert run_cli(second, "contracts", "--new").code == 2  # it has state now
    named = run_main(deployment.env(RELAYER_ID="alerts", RELAYER_EVENTS="EscrowCreated"))
    assert named.code == 0, named.lines
