"""Review of issue 15: ways around the CONTRACT_ADDRESS guard (function/core/identity.py) and
the README's "Adding a contract", on anvil and the emulators. Each test states what the
contract or README promises; a failure is a finding."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from devstack.chain.escrow import deploy_escrow
from devstack.stack.clients import create_topic_and_subscription
from harness import (
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_doc_or_none,
    run_cli,
    run_main,
)


def test_a_reorder_whose_first_try_failed_to_start_is_still_refused(
    deployment: Deployment,
) -> None:
    """README, Adding a contract: addresses reordered with RELAYER_ID unset are refused (exit
    2) when another relayer of the chain relays them. A first try that fails before it starts
    (a topic typo, an RPC or ABI read failing in the start-up checks) must not change that."""
    other = deploy_escrow(deployment.w3)
    truth = deployment.make_activity(6, blocks=2) + deployment.make_activity_on(other, 4, blocks=2)
    assert run_main(deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{other}")).code == 0
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)

    reordered = f"{other},{deployment.contract}"
    typo = run_main(deployment.env(CONTRACT_ADDRESS=reordered, PUBSUB_TOPIC="no-such-topic"))
    assert typo.code == 2, typo.lines
    # record_failure wrote a document under the new default id, without `contracts` ...
    stray = relayer_doc_or_none(f"31337-{other.lower()}")
    print("document left by the failed start:", sorted(stray or {}))

    again = run_main(deployment.env(CONTRACT_ADDRESS=reordered))
    published = payloads(deployment.topic.pull_all())
    assert again.code == 2, (
        f"the reordered set ran (exit {again.code}) and published {len(published)} events "
        f"again from START_BLOCK: {again.summary.get('message')}"
    )
    assert published == []


def test_relayer_contracts_says_what_a_run_would_refuse(deployment: Deployment) -> None:
    """README: `relayer contracts` exits 2 "when a run would refuse them"."""
    other = deploy_escrow(deployment.w3)
    deployment.make_activity(3, blocks=1)
    assert run_main(deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{other}")).code == 0
    reordered = deployment.env(CONTRACT_ADDRESS=f"{other},{deployment.contract}")
    assert run_main(reordered).code == 2  # a run refuses the reordered set ...

    shown = run_cli(reordered, "contracts", "--json")
    print(shown.stdout)
    assert shown.code == 2, (
        f"... but `relayer contracts` exits {shown.code} and says: {shown.stdout.strip()}"
    )


def test_relayer_reset_under_a_refused_set_fails_with_a_message_not_a_traceback(
    deployment: Deployment,
) -> None:
    """A command the guard refuses says why and exits 2, like a run does (CONTRACT §2 exit
    codes; README: every failure is `error: ...`, with --json `{"error", "exit_code"}`)."""
    other = deploy_escrow(deployment.w3)
    deployment.make_activity(3, blocks=1)
    assert run_main(deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{other}")).code == 0
    reordered = deployment.env(CONTRACT_ADDRESS=f"{other},{deployment.contract}")

    reset = run_cli(reordered, "reset", "--to-block", "0", "--yes", "--json")
    print(reset.stdout, reset.stderr)
    assert "Traceback" not in reset.stderr, reset.stderr[-1500:]
    assert reset.code == 2
    assert json.loads(reset.stdout.splitlines()[-1])["exit_code"] == 2


def _contract_added_past_the_ttl(
    deployment: Deployment,
) -> tuple[list[Any], dict[str, str], int]:
    """A contract with 4 events of history, accepted into a relayer whose first commit is
    older than its TTL: (its history, the environment of a backfill of it alone, the
    checkpoint)."""
    ttl = "0.0001"  # 8.64 s: a relayer "older than its TTL" without waiting a month
    added = deploy_escrow(deployment.w3)
    history = deployment.make_activity_on(added, 4, blocks=2, seed=5)
    deployment.make_activity(3, blocks=1)
    assert run_main(deployment.env(RELAYER_EVENT_TTL_DAYS=ttl)).code == 0
    deployment.topic.pull_all()
    time.sleep(9)  # past the TTL of the first commit: not a timing assertion
    pinned = deployment.env(
        RELAYER_EVENT_TTL_DAYS=ttl,
        RELAYER_ID=deployment.relayer_id,
        CONTRACT_ADDRESS=f"{deployment.contract},{added}",
    )
    assert run_cli(pinned, "contracts", "--accept").code == 0
    checkpoint = int(relayer_doc(deployment.relayer_id)["next_block"])
    alone = deployment.env(
        RELAYER_EVENT_TTL_DAYS=ttl, RELAYER_ID=deployment.relayer_id, CONTRACT_ADDRESS=added
    )
    return list(history), alone, checkpoint


def test_a_contract_added_to_a_relayer_older_than_the_ttl_gets_its_history_as_new_events(
    deployment: Deployment,
) -> None:
    """README, Adding a contract, step 3: the new contract's history below the checkpoint is
    relayed by `relayer backfill` of the new address alone. Those events were never
    published: they are new history, not a replay (CONTRACT §3: `replay` marks an operator's
    replay). A relayer that has run longer than RELAYER_EVENT_TTL_DAYS (30 days by default,
    so every production relayer after a month) must still get them, unmarked."""
    history, alone, checkpoint = _contract_added_past_the_ttl(deployment)
    filled = run_cli(alone, "backfill", "--from-block", "0", "--to-block", str(checkpoint - 1))
    print(filled.stdout, filled.stderr)
    assert filled.code == 0, (
        "the README's backfill of the added contract is refused: "
        + (filled.stderr.strip().splitlines() or [""])[-1]
    )
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(history))), history)


def test_replay_expired_marks_a_new_contracts_history_as_a_replay(deployment: Deployment) -> None:
    """The way out the refusal above offers (--replay-expired) marks never-published events
    replay="true": consumers that treat a replay as "seen before" drop new history."""
    history, alone, checkpoint = _contract_added_past_the_ttl(deployment)
    filled = run_cli(
        alone,
        "backfill",
        "--from-block",
        "0",
        "--to-block",
        str(checkpoint - 1),
        "--replay-expired",
    )
    assert filled.code == 0, filled.lines
    got = deployment.topic.pull_all(at_least=len(history))
    marked = [m for m in got if m.attributes.get("replay") == "true"]
    assert marked == [], f"{len(marked)} of {len(got)} first-time events marked replay=true"


def test_the_runbooks_backfill_of_an_added_contract_works_under_the_default_id(
    deployment: Deployment,
) -> None:
    """docs/RUNBOOK.md, "A changed CONTRACT_ADDRESS": after `relayer contracts --accept
    --env-file job.env`, "its history with `CONTRACT_ADDRESS=0x... relayer backfill
    --from-block CREATION --to-block N-1 --env-file job.env`". A job.env of a relayer under
    the default id has no RELAYER_ID (an address added at the end keeps that id), so the
    shell's CONTRACT_ADDRESS alone names another state."""
    added = deploy_escrow(deployment.w3)
    history = deployment.make_activity_on(added, 4, blocks=2, seed=5)
    deployment.make_activity(3, blocks=1)
    assert run_main(deployment.env()).code == 0
    deployment.topic.pull_all()
    job_env = deployment.env(CONTRACT_ADDRESS=f"{deployment.contract},{added}")  # no RELAYER_ID
    assert run_main(job_env).code == 2
    assert run_cli(job_env, "contracts", "--accept").code == 0
    checkpoint = relayer_doc(deployment.relayer_id)["next_block"]

    # The runbook's command pins the state's name (RELAYER_ID=B) with the address alone.
    runbook = {**job_env, "CONTRACT_ADDRESS": added, "RELAYER_ID": deployment.relayer_id}
    filled = run_cli(runbook, "backfill", "--from-block", "0", "--to-block", str(checkpoint - 1))
    print(filled.stdout, filled.stderr)
    assert filled.code == 0, (filled.stderr.strip().splitlines() or [""])[-1]
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(history))), history)


def test_relayer_contracts_accept_does_not_rewrite_the_states_chain(
    deployment: Deployment,
) -> None:
    """identity.judge refuses a state of another chain (a run: exit 2, `relayer contracts`:
    exit 2); `--accept` is for a contract set, and must not take a CHAIN_ID typo with it."""
    deployment.make_activity(3, blocks=1)
    assert run_main(deployment.env()).code == 0
    wrong = deployment.env(CHAIN_ID="5", RELAYER_ID=deployment.relayer_id)
    assert run_cli(wrong, "contracts").code == 2
    accepted = run_cli(wrong, "contracts", "--accept")
    doc = relayer_doc(deployment.relayer_id)
    assert (accepted.code, doc["chain_id"]) == (2, 31337), (
        f"--accept exit {accepted.code}; the state now says chain {doc['chain_id']}: "
        f"{accepted.stdout.strip()}"
    )


def test_pinning_relayer_id_in_another_case_does_not_start_over(deployment: Deployment) -> None:
    """README, Adding a contract, step 1: "Pin the state's name ... RELAYER_ID=31337-0x5fbd…".
    An operator who pins it as the address is usually written (EIP-55 case) names a state
    that does not exist; issue 15 asks that starting over from START_BLOCK be impossible to
    do by accident."""
    truth = deployment.make_activity(5, blocks=2)
    assert run_main(deployment.env()).code == 0
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)

    pinned = deployment.env(RELAYER_ID=f"31337-{deployment.contract}")  # EIP-55 case
    again = run_main(pinned)
    published = payloads(deployment.topic.pull_all())
    assert published == [], (
        f"exit {again.code}: {len(published)} events published again from START_BLOCK under "
        f"RELAYER_ID=31337-{deployment.contract}"
    )


def test_the_cut_over_after_a_shadow_run_relays_the_history_to_the_production_topic(
    deployment: Deployment, stack: Any
) -> None:
    """README, Moving over: a shadow relayer (RELAYER_ID=shadow, its own topic) runs beside
    the old service; at cut-over the production relayer is deployed with the production
    topic and START_BLOCK = the old checkpoint, the shadow's state deleted only "afterwards".
    Both in one deployment (one database), the production relayer's first run is refused,
    and the refusal says to continue the shadow's state, whose checkpoint is past every
    event the production topic never received."""
    truth = deployment.make_activity(6, blocks=3)
    shadow_topic = create_topic_and_subscription(
        stack.pubsub.address,
        stack.project,
        f"shadow-{uuid.uuid4().hex[:8]}",
        f"shadow-sub-{uuid.uuid4().hex[:8]}",
    )
    shadow = deployment.env(RELAYER_ID="shadow", PUBSUB_TOPIC=shadow_topic.topic_id)
    assert run_main(shadow).code == 0
    assert len(shadow_topic.pull_all(at_least=len(truth))) == len(truth)

    production = deployment.env()  # the production topic, the default RELAYER_ID
    first = run_main(production)
    if first.code == 2 and "RELAYER_ID=shadow" in first.summary["message"]:
        # What the refusal says to do: the production topic then gets nothing of the history.
        followed = run_main(deployment.env(RELAYER_ID="shadow"))
        got = payloads(deployment.topic.pull_all())
        raise AssertionError(
            f"refused: {first.summary['message']!r}; following it: exit {followed.code}, "
            f"{len(got)} of {len(truth)} events reach the production topic"
        )
    got = payloads(deployment.topic.pull_all(at_least=len(truth)))
    assert_exactly_once(got, truth)
