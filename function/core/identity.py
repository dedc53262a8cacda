"""Which contracts a relayer's state belongs to, and when a configuration may not use it.

The default `RELAYER_ID` is `{CHAIN_ID}-{first address of CONTRACT_ADDRESS}` (docs/CONTRACT.md
§1), so reordering the addresses, or adding one in front, names a state that does not exist:
the run would start again from `START_BLOCK` and publish the whole history a second time.
And adding an address to an existing state would relay it only from that state's checkpoint
on, its history silently never. Both are refused here, before anything is written; removing
an address is allowed (the operator chose to stop relaying it) and said.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Identity:
    """What a relayer's configuration says its state is for."""

    relayer_id: str
    chain_id: int
    contracts: tuple[str, ...]  # as configured, EIP-55
    default_id: bool  # RELAYER_ID unset: derived from the first address

    def fields(self) -> dict[str, Any]:
        """Written with every commit, readable in the console (docs/CONTRACT.md §4)."""
        return {"chain_id": self.chain_id, "contracts": list(self.contracts)}


@dataclass(frozen=True)
class Verdict:
    refused: str | None = None  # why this configuration may not use the state (exit 2)
    dropped: tuple[str, ...] = ()  # addresses the state had that the configuration left out


def judge(
    me: Identity,
    stored: Mapping[str, Any] | None,
    others: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> Verdict:
    """`stored`: this relayer's document (None: none yet); `others`: the other relayers'
    documents, consulted only for a new state under a default id."""
    if stored is None:
        if not me.default_id:
            return Verdict()  # a name the operator chose: a second relayer on purpose
        return Verdict(refused=_started_elsewhere(me, others))
    chain = stored.get("chain_id")
    if chain is not None and int(chain) != me.chain_id:
        return Verdict(
            refused=f"RELAYER_ID={me.relayer_id} holds the state of chain {chain}, not of "
            f"CHAIN_ID={me.chain_id}: set RELAYER_ID to a name of its own for this chain"
        )
    had = stored.get("contracts")
    if not isinstance(had, list):
        return Verdict()  # written before contracts were recorded: nothing to compare
    have = {str(a).lower() for a in had}
    added = [a for a in me.contracts if a.lower() not in have]
    wanted = {a.lower() for a in me.contracts}
    dropped = tuple(str(a) for a in had if str(a).lower() not in wanted)
    if added:
        return Verdict(refused=_added(me, stored, added), dropped=dropped)
    return Verdict(dropped=dropped)


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


def _started_elsewhere(me: Identity, others: Iterable[tuple[str, Mapping[str, Any]]]) -> str | None:
    mine = {a.lower(): a for a in me.contracts}
    for relayer_id, doc in others:
        if relayer_id == me.relayer_id or doc.get("chain_id") != me.chain_id:
            continue
        theirs = doc.get("contracts")
        theirs_lower = {str(a).lower() for a in theirs} if isinstance(theirs, list) else set()
        shared = [a for low, a in mine.items() if low in theirs_lower]
        if shared:
            nxt = doc.get("next_block")
            where = f" (next block {nxt})" if nxt is not None else ""
            return (
                f"no state under RELAYER_ID={me.relayer_id} (the default: CHAIN_ID and the "
                f"first address of CONTRACT_ADDRESS), but relayer {relayer_id}{where} already "
                f"relays {', '.join(shared)}: a reordered CONTRACT_ADDRESS, or an address "
                f"added in front, would start again from START_BLOCK. Set "
                f"RELAYER_ID={relayer_id} to continue that state (README: Adding a contract)"
            )
    return None
