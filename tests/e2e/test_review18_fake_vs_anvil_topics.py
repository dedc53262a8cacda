"""Review of 118b5e9: the fake chain's topic matching (now `query_matches`) against anvil's.

The change reads by address alone when every named event is relayed, and changed the fake's
topic0 test so that a log without topics no longer raises there. The unit tier trusts the
fake to answer as a node does, so the same logs (zero, one and three topics) are emitted on
anvil and in the fake, and every topic shape the relayer sends is asked of both.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from devstack.chain.emitter import Emitter
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.stack.services import Anvil
from function.adapters.chain import ChainReader
from function.adapters.jsonrpc.client import JsonRpc
from function.core.catalogue import TopicQuery
from function.core.model import RawLog
from function.core.planning import BlockRange
from function.run.ports import Chain

T_A = "0x" + keccak(text="Approval(address,address,uint256)").hex()
T_B = "0x" + keccak(text="Upgraded(address)").hex()
ONE = "0x" + "00" * 31 + "01"
TWO = "0x" + "00" * 31 + "02"

# One block of logs, in this order: what each case below asks is checked by its indexes.
LOGS: list[tuple[list[str], bytes]] = [
    ([], b"\x01" * 32),  # 0: no topics
    ([T_A], b""),  # 1: topic0 only
    ([T_A, ONE, TWO], b""),  # 2: three topics
    ([T_B, ONE], b""),  # 3: another topic0
    ([ONE], b""),  # 4: an anonymous-looking first topic
]


def _shapes(logs: Sequence[RawLog]) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(t.lower() for t in e["topics"]), e["data"].lower()) for e in logs]


@pytest.fixture
def both(anvil: Anvil) -> tuple[Chain, Chain, str, BlockRange]:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
    emitter = Emitter.deploy(w3)
    emitted = emitter.emit([(list(ts), data) for ts, data in LOGS])
    number = emitted[0].block_number
    real: Chain = ChainReader(JsonRpc([anvil.rpc_url], 31337, attempts=2, sleep=lambda s: None))
    fake = FakeChain()
    address = emitter.address.lower()
    raw: list[Emitted] = [(address, ts, "0x" + data.hex()) for ts, data in LOGS]
    fake.mine_logs([[] for _ in range(number - 1)] + [raw])
    return real, fake, address, BlockRange(number, number)


CASES: list[tuple[str, list[str] | None, list[TopicQuery | None] | None]] = [
    ("address alone", None, None),
    ("one topic0", [T_A], None),
    ("two topic0s", [T_A, T_B], None),
    ("a filter on the second topic", None, [((T_A,), (ONE,))]),
    ("a filter on the third topic", None, [((T_A,), None, (TWO,))]),
    ("several queries", None, [((T_B,),), ((T_A,), (ONE,))]),
]


@pytest.mark.parametrize(("label", "topic0s", "queries"), CASES, ids=[c[0] for c in CASES])
def test_the_fake_answers_every_topic_shape_as_anvil_does(
    both: tuple[Chain, Chain, str, BlockRange],
    label: str,
    topic0s: list[str] | None,
    queries: list[TopicQuery | None] | None,
) -> None:
    real, fake, address, blocks = both
    _, from_anvil = real.logs_with_headers(blocks, [address], topic0s, [], queries)
    _, from_fake = fake.logs_with_headers(blocks, [address], topic0s, [], queries)
    assert _shapes(from_fake) == _shapes(from_anvil), label
