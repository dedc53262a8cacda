"""Which contracts a run relays: CONTRACT_ADDRESS, and with RELAYER_FACTORY the factory's
children, each from the block of its creation on (pure; the run keeps one `Watch`).

- What to ask `eth_getLogs` for (`addresses`): the configured contracts, the factory (for its
  creation events) and the children; past `ADDRESS_LIST_MAX` addresses no list at all (the
  topics alone, every contract's), as Ponder does: providers refuse or slow down on long
  address lists, and a local filter (`sift`) drops what is not relayed.
- What to keep of an answer (`sift`): a log of a configured contract, or of a child at or
  after its creation block: a child's own logs earlier in its creation block (its
  constructor's, before the factory's event) are relayed, as the block is the unit.
- The children in chain order: those stored below the checkpoint and those found since. The
  checkpoint and the children below it are committed together (`write_for`), so a child
  above the checkpoint is never stored: a crash, a reorganisation or a rewind only forgets
  what the next look finds again (`forget_from`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from function.core.model import RawLog
from function.errors import DecodeError

if TYPE_CHECKING:
    from function.core.creations import Factory

# Past this many addresses eth_getLogs is asked by topic alone and its answer filtered here.
ADDRESS_LIST_MAX = 500


@dataclass(frozen=True, slots=True)
class Child:
    """A contract the factory created, from the block its creation event is in."""

    address: str  # lowercase
    block_number: int


@dataclass(frozen=True)
class ChildWrite:
    """The children a commit stores with its checkpoint: every one below it, in chain order."""

    children: Sequence[Child]
    changed_from: int  # the first index that may differ from what is stored
    to_block: int  # the checkpoint: the first block whose creations are not in `children`
    # A look below the checkpoint stored as it goes (`to_block` below the checkpoint): kept
    # without a checkpoint that moves, where any other write needs one.
    scan: bool = False


class Watch:
    """The contracts one run relays (configured, and the factory's children)."""

    def __init__(
        self,
        contracts: Iterable[str],
        factory: Factory | None = None,
        children: Sequence[Child] = (),
        covered_to: int | None = None,
        *,
        by_topic: bool = True,
    ) -> None:
        self.contracts = frozenset(a.lower() for a in contracts)
        self.factory = factory
        # False when a selected event is anonymous: its logs have no topic0, so a read
        # without the address list would be every log of the chain.
        self.by_topic = by_topic
        self._children: list[Child] = []
        self._blocks: list[int] = []  # the children's blocks, for bisect
        self._since: dict[str, int] = {}
        # The first block whose creations were not looked at yet (None: none were), and the
        # children up to `_clean` stored as they are (`restore`).
        self.covered_to: int | None = None
        self._clean = 0
        self.restore(children, covered_to)

    # -- what to read -----------------------------------------------------------------
    def addresses(self, found: Mapping[str, int] | None = None) -> list[str] | None:
        """The address list of an eth_getLogs (`found`: children found in the read so far);
        None: too many, ask by topic and `sift`. Without a factory, the configured contracts."""
        if self.factory is None:
            return sorted(self.contracts)
        # Children are distinct, and none is known and found at once: with many, no set of
        # hundreds of thousands of addresses is built for each window just to be dropped.
        if self.by_topic and len(self._since) + len(found or ()) > ADDRESS_LIST_MAX:
            return None
        wanted = {*self.contracts, self.factory.address, *self._since, *(found or ())}
        return sorted(wanted) if len(wanted) <= ADDRESS_LIST_MAX or not self.by_topic else None

    def listed(self, addresses: Sequence[str]) -> list[str] | None:
        """The address list of a read of `addresses` alone (a window's new children): None
        past ADDRESS_LIST_MAX, as for every read."""
        if self.by_topic and len(addresses) > ADDRESS_LIST_MAX:
            return None
        return list(addresses)

    def relays(self, address: str, block: int, found: Mapping[str, int] | None = None) -> bool:
        """Whether a log of `address` (lowercase) in `block` is relayed."""
        if address in self.contracts:
            return True
        since = self._since.get(address)
        if since is None and found:
            since = found.get(address)
        return since is not None and block >= since

    def sift(
        self,
        logs: Sequence[RawLog],
        chain_id: int,
        found: dict[str, int],
        unreadable: list[tuple[RawLog, DecodeError]] | None = None,
    ) -> list[RawLog]:
        """The logs of `logs` that are relayed, after adding to `found` (address -> block)
        the children its creation events name that are not known yet. A creation event that
        does not fit the ABI names no child that can be known: a `DecodeError`, or, given
        `unreadable` (RELAYER_DEADLETTER_TOPIC), put there with its error and left out."""
        factory = self.factory
        if factory is None:
            return list(logs)  # asked by address: the chain adapter checked each one
        bad: set[int] = set()
        for n, entry in enumerate(logs):
            if factory.creates(entry):
                try:
                    child = factory.child_of(entry, chain_id)
                except DecodeError as e:
                    if unreadable is None:
                        raise
                    unreadable.append((entry, e))
                    bad.add(n)
                    continue
                if child not in self._since and child not in found:
                    found[child] = int(entry["blockNumber"], 16)
        return [
            e
            for n, e in enumerate(logs)
            if n not in bad and self.relays(e["address"].lower(), int(e["blockNumber"], 16), found)
        ]

    # -- the children -------------------------------------------------------------------
    @property
    def children(self) -> Sequence[Child]:
        return self._children

    def since(self, address: str) -> int | None:
        return self._since.get(address.lower())

    def add(self, children: Iterable[Child]) -> list[Child]:
        """Children found by a read, in chain order; those already known are kept as they were
        (the first creation counts). The new ones."""
        new = []
        for child in children:
            # A child that is a configured contract too is a child all the same: dropped from
            # CONTRACT_ADDRESS later, it is still relayed as one.
            if child.address in self._since:
                continue
            if self._children and child.block_number < self._children[-1].block_number:
                raise DecodeError(
                    f"child {child.address} of block {child.block_number} was found after one "
                    f"of block {self._children[-1].block_number}: children must come in "
                    "chain order"
                )
            self._children.append(child)
            self._blocks.append(child.block_number)
            self._since[child.address] = child.block_number
            new.append(child)
        return new

    def restore(self, stored: Sequence[Child], covered_to: int | None) -> None:
        """The children as stored (`covered_to`: the block up to which they were looked for)."""
        self.add(stored)
        self._clean = len(self._children)
        self.covered_to = covered_to

    def forget_from(self, block: int) -> int:
        """Forget the children created at `block` or later (not relayed yet: a rewind, or a
        look that starts again from the checkpoint); how many."""
        cut = bisect.bisect_left(self._blocks, block)
        gone = self._children[cut:]
        for child in gone:
            del self._since[child.address]
        del self._children[cut:]
        del self._blocks[cut:]
        self._clean = min(self._clean, cut)
        if self.covered_to is not None:
            self.covered_to = min(self.covered_to, block)
        return len(gone)

    def write_for(self, next_block: int) -> ChildWrite | None:
        """What a commit of the checkpoint `next_block` stores (None: no factory)."""
        if self.factory is None:
            return None
        below = bisect.bisect_left(self._blocks, next_block)
        return ChildWrite(self._children[:below], min(self._clean, below), next_block)

    def scanned(self) -> ChildWrite | None:
        """What a look for creations below the checkpoint has found so far: every child,
        up to the block it reached (`covered_to`)."""
        if self.factory is None or self.covered_to is None:
            return None
        write = self.write_for(self.covered_to)
        assert write is not None
        return replace(write, scan=True)

    def stored(self, write: ChildWrite) -> None:
        """`write` was committed: what it stored needs no rewriting."""
        self._clean = len(write.children)
