"""Rewinding over a chain reorganisation: find the common ancestor, retract, move back.

The effects come in the order that keeps a crash harmless: retractions are published and
awaited first, then the orphaned records are marked removed, then the checkpoint moves back.
A crash in between only publishes some retractions twice, with the same event ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from function.core.checkpoint import Progress
from function.core.model import BlockRecord, Header
from function.core.reorg import find_ancestor, marked_removed, orphaned, retractions
from function.errors import InDoubtError, NotSentError, PublishError, ReorgError, StoppedError
from function.run.dispatch import Dispatcher
from function.run.leasing import LeaseKeeper
from function.run.ports import Chain, Records

log = logging.getLogger(__name__)

RECORDS_PROBED = 512  # block records read to find an ancestor older than `recent_blocks`


@dataclass(frozen=True)
class Rewound:
    """Where the relayer continues after a reorganisation, and what it retracted."""

    next_block: int
    ancestor: int
    ancestor_hash: str
    depth: int
    retracted: int


def rewind(
    chain: Chain,
    records: Records,
    dispatcher: Dispatcher,
    lease: LeaseKeeper,
    head: int,
    next_block: int,
    checkpoint: Header,
) -> Rewound:
    """Back to the newest recorded block still on the chain, retracting what was published
    on the orphaned blocks; a fork below every recorded block fails loudly."""
    grant = lease.grant
    recent = [r for r in grant.recent_blocks if r.number < next_block and r.number <= head]
    canonical = {n: h.hash for n, h in chain.headers(r.number for r in recent).items()}
    ancestor = find_ancestor(recent, canonical)
    if ancestor is None:
        # Deeper than `recent_blocks`: the block records below still name relayed blocks.
        below = min((r.number for r in recent), default=next_block)
        older = [r for r in records.refs_below(below, RECORDS_PROBED) if r.number <= head]
        canonical.update((n, h.hash) for n, h in chain.headers(r.number for r in older).items())
        ancestor = find_ancestor(older, canonical)
        recent = recent + older
    if ancestor is None:
        oldest = min((r.number for r in recent), default=next_block - 1)
        raise ReorgError(
            f"the chain reorganised below block {oldest}, deeper than the blocks this relayer "
            f"recorded (block {checkpoint.number} is now {checkpoint.hash}, it relayed "
            f"{grant.checkpoint_hash}): nothing was skipped; check the node, then move the "
            "checkpoint back to a block before the fork (relayer reset)"
        )
    above = records.read(ancestor.number + 1)
    heights = {r.number for r in above if r.number <= head}
    canonical.update((n, h.hash) for n, h in chain.headers(heights).items())
    retracted = retract(records, dispatcher, lease, orphaned(above, canonical))
    lease.commit(Progress(ancestor.number + 1, ancestor.hash, (), 0, retracted, rewind=True))
    depth = next_block - 1 - ancestor.number
    done = Rewound(ancestor.number + 1, ancestor.number, ancestor.hash, depth, retracted)
    log.warning(
        "chain reorganisation: %d blocks above %d replaced; %d published events retracted",
        done.depth,
        done.ancestor,
        done.retracted,
    )
    return done


def retract(
    records: Records, dispatcher: Dispatcher, lease: LeaseKeeper, orphans: Sequence[BlockRecord]
) -> int:
    """Publish a retraction for every published event of the orphaned block records, then mark
    them removed; the number retracted. Retractions go out (and are answered) before the
    records change, so a crash in between only sends some of them twice, same event ids."""
    payloads = retractions(orphans)
    if not payloads:
        return 0
    lease.ensure()
    results = dispatcher.send_payloads(payloads, lease.publish_deadline())
    failed = [r for r in results if isinstance(r, BaseException)]
    if (
        failed
        and dispatcher.stopping
        and all(isinstance(r, NotSentError | InDoubtError) for r in failed)
    ):
        raise StoppedError(
            f"stopped while retracting ({len(failed)} of {len(payloads)} retractions not "
            "confirmed): the next run retracts them again"
        )
    if failed:
        raise PublishError(f"Pub/Sub did not accept {len(failed)} retractions: {failed[0]}")
    records.write(lease.grant, [marked_removed(r) for r in orphans])
    return len(payloads)
