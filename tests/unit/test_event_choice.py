"""Pure decisions of decoding, as tables: which event a log is (several layouts per topic0,
anonymous events, selection), and the values the EVM reads from odd encodings.

Expected values are written out from the bytes each row builds, not from the decoder.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode as strict_decode
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from function.core.abi import event_catalogue
from function.core.catalogue import EventCatalogue
from function.core.lenient import tuple_decoder
from function.core.values import topic_reader
from function.errors import DecodeError

ALICE = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
BOB = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def w(value: int | bytes) -> str:
    """A topic: an integer, or bytes right-aligned, as 0x hex."""
    raw = value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\0")
    return "0x" + raw.hex()


def event(name: str, *inputs: tuple[str, str, bool], anonymous: bool = False) -> Any:
    return {
        "type": "event",
        "name": name,
        "anonymous": anonymous,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


ADDR = "address"
ABI = [
    event("Transfer", ("from", ADDR, True), ("to", ADDR, True), ("value", "uint256", False)),
    event("Transfer", ("from", ADDR, True), ("to", ADDR, True), ("tokenId", "uint256", True)),
    event("Approval", ("owner", ADDR, True), ("spender", ADDR, True), ("value", "uint256", False)),
    event("Tagged", ("id", "uint256", True), ("label", "string", False)),
    event("Tagged", ("id", "uint256", False), ("label", "string", True)),
    event("Ping", ("x", "uint256", True), ("y", "uint256", False), anonymous=True),
    event("Pong", ("a", "uint256", True), ("b", "uint256", False), anonymous=True),
    event("Solo", ("who", ADDR, True), ("note", "string", False), anonymous=True),
]
TRANSFER = topic0("Transfer(address,address,uint256)")
APPROVAL = topic0("Approval(address,address,uint256)")
TAGGED = topic0("Tagged(uint256,string)")
EVERYTHING = ("Transfer", "Approval", "Tagged", "Ping", "Pong", "Solo")


def catalogue(selected: tuple[str, ...]) -> EventCatalogue:
    return event_catalogue(ABI, selected, "test.json")


def chosen(cat: EventCatalogue, topics: list[str], data: bytes) -> str | None:
    """The chosen event as `Name(param names)`, so rows can tell layouts apart."""
    spec = cat.choose(topics, data)
    return None if spec is None else f"{spec.name}({','.join(p.name for p in spec.params)})"


WORD = (5).to_bytes(32, "big")
HI = encode(["string"], ["hi"])


@pytest.mark.parametrize(
    ("selected", "topics", "data", "expected"),
    [
        # One topic0, two layouts: the topic count chooses (ERC20 vs ERC721 Transfer).
        (EVERYTHING, [TRANSFER, w(1), w(2)], WORD, "Transfer(from,to,value)"),
        (EVERYTHING, [TRANSFER, w(1), w(2), w(3)], b"", "Transfer(from,to,tokenId)"),
        (("Transfer",), [TRANSFER.upper().replace("0X", "0x"), w(1), w(2)], WORD,
         "Transfer(from,to,value)"),
        # Same topic count: the data layout chooses (a uint256 word vs a string).
        (EVERYTHING, [TAGGED, w(1)], HI, "Tagged(id,label)"),
        (EVERYTHING, [TAGGED, w(keccak(text="hi"))], WORD, "Tagged(id,label)"),
        # A named event that is not selected is ignored, whatever its shape.
        (("Transfer", "Solo"), [APPROVAL, w(1), w(2)], WORD, None),
        (("Transfer", "Solo"), [APPROVAL], b"\x01", None),
        # Anonymous: topic count and data layout identify exactly one.
        (EVERYTHING, [w(bytes.fromhex(BOB[2:]))], HI, "Solo(who,note)"),
        (("Ping",), [w(bytes.fromhex(BOB[2:]))], HI, None),  # only Solo fits: not selected
        (("Solo",), [w(1)], WORD, None),  # Ping or Pong, neither selected
    ],
)  # fmt: skip
def test_the_candidate_a_log_is(
    selected: tuple[str, ...], topics: list[str], data: bytes, expected: str | None
) -> None:
    assert chosen(catalogue(selected), topics, data) == expected


@pytest.mark.parametrize(
    ("selected", "topics", "data", "reason"),
    [
        (EVERYTHING, [TRANSFER, w(1)], WORD, "has 1 indexed topics, the ABI's Transfer has 2 or 3"),
        (EVERYTHING, [TAGGED, w(1)], b"\x01", "fits none of the ABI's layouts of Tagged"),
        (EVERYTHING, [w(1)], WORD, "fits several events of the ABI with its 1 topics and 32 bytes"),
        (("Ping",), [w(1)], WORD, "Ping(uint256 indexed x, uint256 y) anonymous; Pong("),
        (("Solo",), [w(1), w(2), w(3)], b"", "fits none of the ABI's anonymous events"),
        (("Solo",), [], b"", "has no topics and fits none"),
        (("Solo",), [w(bytes.fromhex(BOB[2:]))], HI[:40], "with its 1 topics and 40 bytes"),
        (("Transfer",), ["0x" + "00" * 32], b"", "matches no selected event"),
        (("Transfer",), [], b"", "has topic0 none, which matches no selected event"),
    ],
)  # fmt: skip
def test_logs_the_abi_cannot_place_say_why(
    selected: tuple[str, ...], topics: list[str], data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        catalogue(selected).choose(topics, data)


@pytest.mark.parametrize(
    ("selected", "expected"),
    [
        (("Transfer",), [TRANSFER]),
        (("Approval", "Transfer"), [TRANSFER, APPROVAL]),
        ((), None),  # everything, so the anonymous events too
        (("Transfer", "Ping"), None),
    ],
)
def test_the_topic_filter_is_dropped_only_for_anonymous_events(
    selected: tuple[str, ...], expected: list[str] | None
) -> None:
    assert catalogue(selected).topic_filter == expected


def test_merged_abis_keep_every_layout_once() -> None:
    merged = event_catalogue([*ABI, *ABI[:3]], ("Transfer",), "a.json,b.json")
    assert [len(v) for v in merged.named.values()] == [2, 1, 2]
    assert [s.name for s in merged.relayed()] == ["Transfer", "Transfer"]
    assert [s.name for s in merged.anonymous] == ["Ping", "Pong", "Solo"]


def word(prefix: bytes, value: bytes) -> bytes:
    """A 32-byte word: `value` at the low end, `prefix` repeated above it."""
    return (prefix * 32)[: 32 - len(value)] + value


def string_tail(raw: bytes, padding: bytes = b"\0") -> bytes:
    padded = (len(raw) + 31) // 32 * 32
    return (32).to_bytes(32, "big") + len(raw).to_bytes(32, "big") + raw.ljust(padded, padding)


@pytest.mark.parametrize(
    ("abi_type", "data", "expected"),
    [
        # Invalid UTF-8: each invalid sequence becomes one U+FFFD (maximal subparts, as
        # viem's TextDecoder and every WHATWG decoder do).
        ("string", string_tail(b"\xff"), "\ufffd"),
        ("string", string_tail(b"caf\xc3"), "caf\ufffd"),
        ("string", string_tail(b"\xe2\x82x"), "\ufffdx"),
        ("string", string_tail(b"\xed\xa0\x80"), "\ufffd\ufffd\ufffd"),  # a surrogate
        ("string", string_tail(b"\xc0\xaf"), "\ufffd\ufffd"),  # overlong
        ("string", string_tail(b"\xf0\x9f\x98\x80"), "\U0001f600"),  # valid stays valid
        # Padding after a string or bytes is not read, nor required at the end.
        ("string", string_tail(b"hello", b"\x01"), "hello"),
        ("string", string_tail(b"hello")[:69], "hello"),
        ("bytes", string_tail(b"\x01\x02", b"\xff"), b"\x01\x02"),
        # Static values: the low bits, as Solidity's cleanup (and/signextend) reads them.
        ("uint8", word(b"\xaa", b"\x07"), 7),
        ("uint256", b"\xff" * 32, 2**256 - 1),
        ("uint16", word(b"\x01", b"\xff\xff"), 65535),
        ("int16", word(b"\x12", b"\xff\xfe"), -2),
        ("int8", word(b"\xff", b"\x05"), 5),
        ("int256", b"\xff" * 32, -1),
        ("address", word(b"\xde", bytes.fromhex(BOB[2:])), BOB),
        ("bytes4", b"\xca\xfe\xba\xbe" + b"\x99" * 28, b"\xca\xfe\xba\xbe"),
        # bool: true when any bit is set.
        ("bool", b"\0" * 32, False),
        ("bool", word(b"\0", b"\x01"), True),
        ("bool", word(b"\0", b"\x02"), True),
        ("bool", b"\x80" + b"\0" * 31, True),
    ],
)
def test_values_are_read_as_the_evm_reads_them(abi_type: str, data: bytes, expected: Any) -> None:
    assert tuple_decoder([abi_type])(data) == (expected,)


@pytest.mark.parametrize(
    ("types", "data"),
    [
        (["uint256"], b"\x01" * 31),  # shorter than its word
        (["string"], (32).to_bytes(32, "big") + (33).to_bytes(32, "big") + b"a" * 32),
        (["string"], (32).to_bytes(32, "big") + b"\xff" * 32),  # a length beyond any data
        (["string"], (4096).to_bytes(32, "big") + b"\0" * 64),  # an offset outside the data
        (["uint256[]"], (32).to_bytes(32, "big") + (3).to_bytes(32, "big") + b"\0" * 64),
    ],
)
def test_data_too_short_for_its_layout_is_still_an_error(types: list[str], data: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017 - eth-abi raises several types; decode_log wraps them
        tuple_decoder(types)(data)


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["uint256", "string", "bytes32", "address[]"], [2**200, "café ✓", b"\x11" * 32, [ALICE]]),
        (["(uint8,string,bytes,uint64)"], [(2, "late", b"\x01\x02", 2**63)]),
        (["int24", "bool", "bytes3", "string[]"], [-123456, True, b"abc", ["", "x" * 40]]),
        (["uint8[2][]", "(bool,int8)[2]"], [[[1, 2], [3, 4]], [(True, -1), (False, 127)]]),
    ],
)  # fmt: skip
def test_clean_encodings_decode_as_strict_eth_abi_does(types: list[str], values: list[Any]) -> None:
    data = encode(types, values)
    assert tuple_decoder(types)(data) == strict_decode(types, data)


@pytest.mark.parametrize(
    ("abi_type", "topic", "expected"),
    [
        ("uint8", "0x" + "ee" * 31 + "09", 9),
        ("uint256", "0x" + "ff" * 32, 2**256 - 1),
        ("int8", "0x" + "00" * 31 + "ff", -1),
        ("int16", "0x" + "ff" * 30 + "0005", 5),
        ("int256", "0x" + "ff" * 32, -1),
        ("address", "0x" + "de" * 12 + BOB[2:].upper(), BOB),
        ("bool", "0x80" + "00" * 31, True),
        ("bytes2", "0xabcd" + "77" * 30, b"\xab\xcd"),
    ],
)
def test_indexed_values_with_junk_are_read_as_the_evm_reads_them(
    abi_type: str, topic: str, expected: Any
) -> None:
    reader = topic_reader(abi_type)
    assert reader is not None
    assert reader(topic) == expected


@pytest.mark.parametrize(
    ("selected", "every_event"),
    [
        ((), True),  # RELAYER_EVENTS unset (the anonymous events are selected too)
        (EVERYTHING, False),  # named: the node filters, whatever the names cover
        (("Transfer", "Approval", "Tagged"), False),
        (("Ping",), False),
    ],
)
def test_reads_by_address_alone_only_with_every_event_relayed_unnamed(
    selected: tuple[str, ...], every_event: bool
) -> None:
    """A log whose topic0 no event of the ABI has is still a wrong answer to `choose`: a read
    by address alone applies the topic0s before decoding (`fetching.with_topic0s`)."""
    specs = catalogue(selected)
    assert specs.every_event is every_event
    with pytest.raises(DecodeError):
        specs.choose([w(0xDEAD), w(1)], b"")
