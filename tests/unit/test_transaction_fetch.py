"""RELAYER_INCLUDE=transaction over the in-memory fakes: the transactions come from the same
view as the logs (a read from another block is read again, like any inconsistent view), and
a retraction carries the `transaction` its original carried."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import pytest

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import CHAIN_ID, CONTRACT, catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.planning import BlockRange
from function.core.txfacts import TxFacts
from function.errors import RpcError
from function.run.fetching import fetch
from function.run.relay import Relay

SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class ChainTransactions:
    """The transactions of a fake chain's logs; the first `stale` reads answer from a block
    that is no longer the log's (a reorganisation between the reads)."""

    def __init__(self, chain: FakeChain, stale: int = 0) -> None:
        self.chain = chain
        self.stale = stale
        self.reads: list[dict[int, list[str]]] = []

    def read(self, by_block: Mapping[int, Collection[str]]) -> dict[str, TxFacts]:
        self.reads.append({n: sorted(txs) for n, txs in by_block.items()})
        found: dict[str, TxFacts] = {}
        for number, txs in by_block.items():
            block = self.chain.canonical[number]
            for entry in block.logs:
                tx = entry["transactionHash"]
                if tx in txs:
                    where = "0x" + "ee" * 32 if self.stale else block.hash
                    value = int(entry["topics"][1], 16) * 10**18
                    found[tx] = TxFacts(tx, where, SENDER, CONTRACT, value, 1)
        self.stale = max(0, self.stale - 1)
        return found


def _fetch(chain: FakeChain, source: ChainTransactions) -> list[Any]:
    blocks = BlockRange(1, chain.head)
    return fetch(chain, catalogue(), [CONTRACT], CHAIN_ID, blocks, transactions=source).events


def test_every_event_carries_its_transaction_read_once_per_range() -> None:
    chain = FakeChain()
    chain.mine([2, 0, 1, 3])
    source = ChainTransactions(chain)
    events = _fetch(chain, source)
    assert len(events) == 6
    for e in events:
        tick = int(e.args["id"])
        assert e.transaction == {
            "from": SENDER,
            "to": CONTRACT,
            "value": str(tick * 10**18),
            "status": 1,
        }
    assert source.reads == [
        {
            b.number: sorted(entry["transactionHash"] for entry in b.logs)
            for b in chain.canonical
            if b.logs
        }
    ]


def test_a_transaction_read_from_another_block_reads_the_view_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = FakeChain()
    chain.mine([1, 1])
    source = ChainTransactions(chain, stale=1)
    events = _fetch(chain, source)
    assert len(source.reads) == 2  # the whole view read again, like logs that changed
    assert all(e.transaction is not None for e in events)
    assert "changed while being read" in caplog.text


def test_transactions_that_keep_coming_from_another_chain_fail_the_run() -> None:
    chain = FakeChain()
    chain.mine([1])
    with pytest.raises(RpcError, match="kept changing while being read"):
        _fetch(chain, ChainTransactions(chain, stale=99))


def test_no_events_no_read() -> None:
    chain = FakeChain()
    chain.mine([0, 0])
    source = ChainTransactions(chain)
    assert _fetch(chain, source) == [] and source.reads == []


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def test_a_retraction_carries_the_transaction_of_the_message_it_retracts(
    clock: FakeClock,
) -> None:
    chain = FakeChain()
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)
    state = FakeState()
    relay = Relay(
        settings=settings(include=("transaction",)),
        specs=catalogue(),
        chain=chain,
        state=state,
        records=state,
        sink=sink,
        clock=clock.utc,
        transactions=ChainTransactions(chain),
    )
    chain.mine([1, 2, 1])
    assert relay.run().error is None
    first = [json.loads(a.message.data) for a in sink.accepted]
    assert len(first) == 4 and all("transaction" in p for p in first)
    chain.reorg(2, [0, 0, 0])
    assert relay.run().error is None
    retracted = [json.loads(a.message.data) for a in sink.accepted][4:]
    orphaned = [p for p in first if p["block_number"] >= 2]
    assert retracted == [{**p, "removed": True} for p in orphaned]
