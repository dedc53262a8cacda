"""RELAYER_FACTORY checked against the ABI, and the watch's pure decisions: which addresses
eth_getLogs is asked for, which logs are kept, which children a commit stores."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils.crypto import keccak

import function.core.watch as watch_module
from function.core.abi import event_catalogue
from function.core.creations import factory_of
from function.core.factory import parse_factory
from function.core.model import RawLog
from function.core.watch import Child, Watch
from function.errors import ConfigError, DecodeError

FACTORY = "0x" + "fa" * 20


def event(name: str, *inputs: tuple[str, str, bool], anonymous: bool = False) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": anonymous,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


ABI = [
    event(
        "PairCreated",
        ("token0", "address", True),
        ("pair", "address", False),
        ("n", "uint256", False),
    ),
    event("Swap", ("amount", "uint256", False)),
    event("Hidden", ("who", "address", True), anonymous=True),
]
CREATED = "0x" + keccak(text="PairCreated(address,address,uint256)").hex()


def factory(text: str = f"{FACTORY}:PairCreated:pair") -> Any:
    return factory_of(parse_factory(text), event_catalogue(ABI, (), "abi.json"), "abi.json")


def creation(child: str, block: int, index: int = 0, data: str | None = None) -> RawLog:
    body = data if data is not None else "0x" + "00" * 12 + child[2:] + "00" * 31 + "07"
    return {
        "address": FACTORY,
        "topics": [CREATED, "0x" + "00" * 12 + "11" * 20],
        "data": body,
        "blockNumber": hex(block),
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "transactionIndex": "0x0",
        "logIndex": hex(index),
    }


def log_of(address: str, block: int, index: int = 1) -> RawLog:
    return {**creation(address, block, index), "address": address, "topics": ["0x" + "22" * 32]}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"{FACTORY}:Created:pair", "names event Created, which is not in the ABI at abi.json"),
        (f"{FACTORY}:Hidden:who", "is anonymous"),
        (f"{FACTORY}:PairCreated:pool", "has no parameter pool; its parameters: token0, pair, n"),
        (f"{FACTORY}:PairCreated:n", "parameter n of PairCreated is uint256, not an address"),
    ],
)
def test_a_factory_the_abi_refutes_is_a_config_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="RELAYER_FACTORY") as raised:
        factory(text)
    assert says in str(raised.value)


def test_the_creation_event_names_its_child_indexed_or_not() -> None:
    f = factory()
    child = "0x" + "c1" * 20
    assert f.creates(creation(child, 5)) and f.child_of(creation(child, 5), 31337) == child
    indexed = factory(f"{FACTORY}:PairCreated:token0")
    assert indexed.child_of(creation(child, 5), 31337) == "0x" + "11" * 20
    assert not f.creates(log_of(FACTORY, 5))  # another event of the factory
    assert not f.creates({**creation(child, 5), "address": "0x" + "99" * 20})  # not the factory
    with pytest.raises(DecodeError, match="check that ABI_URI lists the factory's ABI"):
        f.child_of(creation(child, 5, data="0x1234"), 31337)


def test_sift_keeps_children_from_their_creation_block_and_drops_the_rest() -> None:
    a, b, stranger = "0x" + "0a" * 20, "0x" + "0b" * 20, "0x" + "5e" * 20
    watch = Watch(["0x" + "ee" * 20], factory(), [Child(a, 3)])
    found: dict[str, int] = {}
    logs = [
        log_of(a, 2),  # before its creation block
        log_of(a, 3),
        log_of(b, 4, 0),  # b's constructor, before the creation below
        creation(b, 4, 1),
        creation(a, 4, 2),  # a named again: its first creation counts
        log_of(stranger, 4),
        log_of("0x" + "ee" * 20, 1),  # a configured contract: always
    ]
    kept = watch.sift(logs, 31337, found)
    assert found == {b: 4}
    assert [(e["address"], int(e["blockNumber"], 16)) for e in kept] == [
        (a, 3), (b, 4), ("0x" + "ee" * 20, 1),
    ]  # fmt: skip
    assert watch.since(a) == 3 and watch.since(b) is None  # sift never changes the watch


def test_addresses_past_the_limit_are_none_unless_an_anonymous_event_needs_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watch_module, "ADDRESS_LIST_MAX", 3)
    kids = [Child("0x" + f"{i:040x}", i) for i in range(1, 3)]
    watch = Watch([], factory(), kids)
    assert watch.addresses() == sorted([FACTORY, *(c.address for c in kids)])
    assert watch.addresses({"0x" + "77" * 20: 9}) is None  # four now: by topic
    listed = Watch([], factory(), [*kids, Child("0x" + "77" * 20, 9)], by_topic=False)
    assert listed.addresses() is not None and len(listed.addresses() or ()) == 4
    assert Watch(["0x" + "ee" * 20]).addresses() == ["0x" + "ee" * 20]  # no factory


def test_a_commit_stores_the_children_below_its_checkpoint_and_a_rewind_cuts_them() -> None:
    kids = [Child("0x" + f"{n:040x}", block) for n, block in enumerate((2, 4, 4, 7), 1)]
    watch = Watch([], factory())
    watch.restore(kids[:1], 3)
    assert watch.add([kids[0], *kids[1:]]) == kids[1:]  # the known one is not new
    write = watch.write_for(5)
    assert write is not None
    assert list(write.children) == kids[:3] and write.changed_from == 1 and write.to_block == 5
    watch.stored(write)
    assert watch.forget_from(4) == 3 and list(watch.children) == kids[:1]
    assert watch.covered_to == 3  # never above what is known
    again = watch.write_for(4)
    assert again is not None and again.changed_from == 1 and list(again.children) == kids[:1]
    with pytest.raises(DecodeError, match="chain order"):
        watch.add([Child("0x" + "99" * 20, 9), Child("0x" + "98" * 20, 8)])
    assert Watch(["0x" + "ee" * 20]).write_for(5) is None  # no factory: nothing to store
