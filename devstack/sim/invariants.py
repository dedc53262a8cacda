"""The guarantees of CONTRACT §7, checked while a schedule runs and after it.

While it runs (listeners on the fakes): every message Pub/Sub accepts comes from the run
holding the lease, before the lease's end (§7.3, §7.5); no event recorded as published is
published again (§7.2); every checkpoint commit comes after every event of the chain it
names, up to it, was accepted (§7.1); the checkpoint never moves back but to rewind; no write
of a fenced-out run is applied (§7.6). After it: every event of the final canonical chain up
to the final checkpoint was published and not retracted since; every recorded event of a
block the chain replaced was retracted, with the same payload; no retraction without a
publication before it; a crashed run made no call after its crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import function.core.lease as leases
from devstack.sim.clock import FakeClock
from devstack.sim.events import CHAIN_ID
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import Accepted, FakeSink
from devstack.sim.fake_state import FakeState, Write
from devstack.sim.scheduler import RunThread
from function.core.model import PUBLISHED, BlockRef


def event_id(block_hash: str, log_index: int) -> str:
    return f"{CHAIN_ID}:{block_hash}:{log_index}"


@dataclass
class Checker:
    clock: FakeClock
    chain: FakeChain
    state: FakeState
    sink: FakeSink
    runs: Mapping[str, RunThread]
    start_block: int
    violations: list[str] = field(default_factory=list)
    checks: int = 0  # invariant checks made (each one could have failed)
    _published: set[str] = field(default_factory=set)  # event ids accepted (not retractions)
    _checkpoint: int | None = None

    def attach(self) -> None:
        self.sink.on_accept.append(self.accepted)
        self.state.on_write.append(self.written)

    def fail(self, what: str) -> None:
        self.violations.append(f"t={self.clock.now:.3f} {what}")

    # -- while the schedule runs ---------------------------------------------------
    def accepted(self, a: Accepted) -> None:
        self.checks += 2  # under a valid lease; not recorded published before
        payload = json.loads(a.message.data)
        eid, removed = str(payload["event_id"]), bool(payload["removed"])
        run = self.runs.get(a.sender)
        grant = run.grant if run is not None else None
        lease = self.state.lease
        if grant is None or not (
            leases.still_ours(lease, grant.run_id, grant.fence)
            and lease.expires_at is not None
            and lease.expires_at > self.clock.utc_at(a.at)
        ):
            self.fail(
                f"§7.3/7.5 {a.sender} had {eid} (removed={removed}) accepted at t={a.at:.3f} "
                f"outside its lease (lease: {lease})"
            )
        if not removed:
            if self._recorded_published(payload):
                self.fail(f"§7.2 {a.sender} published {eid} although it is recorded published")
            self._published.add(eid)

    def _recorded_published(self, payload: dict[str, Any]) -> bool:
        record = self.state.blocks.get(BlockRef(payload["block_number"], payload["block_hash"]))
        return any(
            e.event_id == payload["event_id"] and e.state == PUBLISHED
            for e in (record.entries if record else ())
        )

    def written(self, w: Write) -> None:
        self.checks += 1  # not fenced out (and, for a checkpoint, the two checks below)
        if not leases.still_ours(w.found, w.run_id, w.fence):
            self.fail(f"§7.6 a {w.kind} of fenced-out run {w.run_id} was applied ({w.found})")
        if w.kind != "commit" or w.next_block is None:
            return
        self.checks += 2
        if self._checkpoint is not None and w.next_block < self._checkpoint and not w.rewind:
            self.fail(f"§7.3 the checkpoint moved back from {self._checkpoint} to {w.next_block}")
        self._checkpoint = w.next_block
        if w.rewind or w.block_hash is None:
            return
        chain = self.chain.ancestry(w.block_hash, self.start_block)
        missing = [
            event_id(b.hash, int(entry["logIndex"], 16))
            for b in chain
            for entry in b.logs
            if event_id(b.hash, int(entry["logIndex"], 16)) not in self._published
        ]
        if missing:
            self.fail(
                f"§7.1 checkpoint {w.next_block} committed before {len(missing)} events of its "
                f"chain were accepted, first {missing[0]}"
            )

    # -- after it ------------------------------------------------------------------
    def final(self, chain: bool = True) -> None:
        """`chain=False`: the relayer stopped on a fork below its records, so what the final
        chain holds is not checked (only the messages and the runs are)."""
        last: dict[str, dict[str, Any]] = {}
        first: dict[str, dict[str, Any]] = {}
        for a in self.sink.accepted:
            payload = json.loads(a.message.data)
            eid = payload["event_id"]
            self.checks += 1
            if payload["removed"]:
                original = first.get(eid)
                if original is None:
                    self.fail(f"{eid} retracted but never published")
                elif {**original, "removed": True} != payload:
                    self.fail(f"the retraction of {eid} differs from what was published")
            else:
                first.setdefault(eid, payload)
            last[eid] = payload
        next_block = self.state.next_block if chain else None
        canonical = {b.hash for b in self.chain.canonical}
        if next_block is not None:
            for block in self.chain.canonical[self.start_block : int(next_block)]:
                for entry in block.logs:
                    eid = event_id(block.hash, int(entry["logIndex"], 16))
                    self.checks += 1
                    if eid not in last:
                        self.fail(f"§7.1 {eid} below the checkpoint {next_block} never published")
                    elif last[eid]["removed"]:
                        self.fail(f"{eid} of the canonical chain was retracted last")
        for ref, record in self.state.blocks.items():
            if ref.hash in canonical or not chain:
                continue
            for recorded in record.entries:
                eid = recorded.event_id
                self.checks += 1
                if recorded.state == PUBLISHED:
                    self.fail(f"record {ref} of a replaced block still says {eid} published")
                elif eid in last and not last[eid]["removed"]:
                    self.fail(f"{eid} of a replaced block was not retracted after its publication")
        for run in self.runs.values():
            if run.calls_after_crash:
                self.fail(f"{run.name} made {run.calls_after_crash} calls after it crashed")


Listener = Callable[[Write], None]
