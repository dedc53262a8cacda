"""Which contracts a relayer's state belongs to, and when a configuration may not use it.

The default `RELAYER_ID` is `{CHAIN_ID}-{first address of CONTRACT_ADDRESS}` (docs/CONTRACT.md
§1), so reordering the addresses, or adding one in front, names a state that does not exist:
the run would start again from `START_BLOCK` and publish the whole history a second time.
An id typed in another case names no state either (Firestore ids are case-sensitive). And
adding an address to an existing state would relay it only from that state's checkpoint on,
its history silently never. All are refused here, before anything is written; removing an
address is allowed (the operator chose to stop relaying it) and said.

A state is what a run committed: a document with neither contracts nor a checkpoint (what a
failed start may leave: its summary alone) is no state, and is judged as a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ADDED = "added"  # the only refusal `relayer contracts --accept` overrides
CHAIN = "chain"
CASE = "case"
REORDERED = "reordered"
FACTORY = "factory"


@dataclass(frozen=True)
class Identity:
    """What a relayer's configuration says its state is for."""

    relayer_id: str
    chain_id: int
    contracts: tuple[str, ...]  # as configured, EIP-55
    default_id: bool  # RELAYER_ID unset: derived from the first address
    topic: str = ""  # projects/{project}/topics/{topic}: where its events go
    factory: str | None = None  # RELAYER_FACTORY, as `FactorySetting.text`

    def fields(self) -> dict[str, Any]:
        """Written with every commit, readable in the console (docs/CONTRACT.md §4)."""
        out: dict[str, Any] = {"chain_id": self.chain_id, "contracts": list(self.contracts)}
        if self.topic:
            out["topic"] = self.topic
        if self.factory:
            out["factory"] = self.factory
        return out


@dataclass(frozen=True)
class Verdict:
    refused: str | None = None  # why this configuration may not use the state (exit 2)
    dropped: tuple[str, ...] = ()  # addresses the state had that the configuration left out
    kind: str | None = None  # ADDED, CHAIN, CASE or REORDERED when refused


def is_state(stored: Mapping[str, Any] | None) -> bool:
    """A checkpoint was committed: a lease taken, or a failed start's summary, is none."""
    return stored is not None and stored.get("next_block") is not None


def seen(stored: Mapping[str, Any] | None, configured: Sequence[str]) -> list[str]:
    """Every contract a state was ever for (`contracts_seen`), lowercase: a contract dropped
    and added again was relayed before, and its history is not new."""
    stored = stored or {}
    ever = {str(a).lower() for a in stored.get("contracts_seen") or []}
    ever |= {str(a).lower() for a in stored.get("contracts") or []}
    return sorted(ever | {a.lower() for a in configured})


def newly_added(stored: Mapping[str, Any], configured: Sequence[str], since: int) -> dict[str, int]:
    """`contracts_added` after `relayer contracts --accept`: each configured contract this
    state never relayed begins at `since` (below it its history is new, however old)."""
    before = set(seen(stored, ()))
    added = {str(k): int(v) for k, v in (stored.get("contracts_added") or {}).items()}
    for address in configured:
        if address.lower() not in before:
            added[address.lower()] = since
    return added


def judge(
    me: Identity,
    stored: Mapping[str, Any] | None,
    others: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> Verdict:
    """`stored`: this relayer's document (None: none yet); `others`: the other relayers'
    documents (id and fields), consulted only for a new state."""
    if not is_state(stored):
        return _new_state(me, others)
    assert stored is not None
    chain = stored.get("chain_id")
    if chain is not None and int(chain) != me.chain_id:
        return Verdict(
            refused=f"RELAYER_ID={me.relayer_id} holds the state of chain {chain}, not of "
            f"CHAIN_ID={me.chain_id}: set RELAYER_ID to a name of its own for this chain",
            kind=CHAIN,
        )
    factory = _factory_change(me, stored)
    if factory is not None:
        return Verdict(refused=factory, kind=FACTORY)
    had = stored.get("contracts")
    if not isinstance(had, list):
        return Verdict()  # written before contracts were recorded: nothing to compare
    have = {str(a).lower() for a in had}
    added = [a for a in me.contracts if a.lower() not in have]
    wanted = {a.lower() for a in me.contracts}
    dropped = tuple(str(a) for a in had if str(a).lower() not in wanted)
    if added:
        return Verdict(refused=_added(me, stored, added), dropped=dropped, kind=ADDED)
    return Verdict(dropped=dropped)


def _factory_change(me: Identity, stored: Mapping[str, Any]) -> str | None:
    """Why a state may not be used with this RELAYER_FACTORY: its children were found with
    another (or none), so the ones the new setting names before the checkpoint would never
    be relayed, or the old ones relayed on."""
    had = stored.get("factory")
    if (had or None) == me.factory:
        return None
    before = f"RELAYER_FACTORY={had}" if had else "no RELAYER_FACTORY"
    now = f"RELAYER_FACTORY={me.factory}" if me.factory else "no RELAYER_FACTORY"
    return (
        f"relayer {me.relayer_id} was relayed with {before}, this configuration has {now}: "
        "the children found so far belong to the old setting, and a new factory's children "
        "created before the checkpoint would never be relayed. Give this configuration a "
        "relayer of its own (RELAYER_ID, with its own START_BLOCK), or restore the setting"
    )


def _added(me: Identity, stored: Mapping[str, Any], added: Sequence[str]) -> str:
    nxt = stored.get("next_block")
    since = f"block {nxt}" if nxt is not None else "its checkpoint"
    return (
        f"CONTRACT_ADDRESS adds {', '.join(added)} to relayer {me.relayer_id}, which relays "
        f"from {since} on: their events before it would never be relayed. To relay them with "
        "their history, give them a relayer of their own (a RELAYER_CONFIG entry with its own "
        f"START_BLOCK); to relay them only from {since} on, run `relayer contracts --accept` "
        "once (README: Adding a contract)"
    )


def _new_state(me: Identity, others: Iterable[tuple[str, Mapping[str, Any]]]) -> Verdict:
    """A first run: refused when an existing state, by all signs, is this one under another
    name. Under the default id (a reordered CONTRACT_ADDRESS, its first address dropped or
    replaced, a pinned RELAYER_ID lost): one of the same chain and topic relaying one of its
    contracts; a second relayer of those to that topic on purpose is started with `relayer
    contracts --new`, one of another topic (a shadow run) is another relayer. Under a chosen
    id: one whose id differs only in case."""
    states = [(i, d) for i, d in others if i != me.relayer_id and is_state(d)]
    for relayer_id, _ in states:
        if relayer_id.lower() == me.relayer_id.lower():
            return Verdict(
                refused=f"no state under RELAYER_ID={me.relayer_id}, but relayer {relayer_id} "
                "has one: Firestore ids are case-sensitive, so this would start again from "
                f"START_BLOCK. Set RELAYER_ID={relayer_id} to continue that state",
                kind=CASE,
            )
    if not me.default_id:
        # A name the operator chose (a second relayer, a bench's, a test's): only a case
        # slip is caught. The default id is what moves by accident.
        return Verdict()
    mine = {a.lower(): a for a in me.contracts}
    for relayer_id, doc in states:
        if doc.get("chain_id") != me.chain_id:
            continue
        if me.topic and doc.get("topic") not in (None, me.topic):
            continue
        theirs = {str(a).lower() for a in doc.get("contracts") or []}
        shared = [a for low, a in mine.items() if low in theirs]
        # A factory relayer's default id follows CONTRACT_ADDRESS too (its factory when
        # unset): the same factory's children to the same topic are the same history.
        if me.factory and doc.get("factory") == me.factory:
            shared.append(f"the children of factory {me.factory.split(':')[0]}")
        if not shared:
            continue
        nxt = doc.get("next_block")
        return Verdict(
            refused=f"no state under RELAYER_ID={me.relayer_id}"
            + (
                " (the default: CHAIN_ID and the first address of CONTRACT_ADDRESS)"
                if me.default_id
                else ""
            )
            + f", but relayer {relayer_id} (next block {nxt}) relays {', '.join(shared)} to "
            "the same topic: starting this one would publish their history again from "
            f"START_BLOCK. If it is that relayer (a reordered CONTRACT_ADDRESS, a first address "
            f"dropped or replaced, a lost RELAYER_ID), set RELAYER_ID={relayer_id}; if it is a "
            "second relayer of these contracts on purpose, run `relayer contracts --new` once "
            "(README: Adding a contract)",
            kind=REORDERED,
        )
    return Verdict()
