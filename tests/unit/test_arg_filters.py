"""RELAYER_ARG_FILTERS (docs/CONTRACT.md §1), pure: the grammar, the check against the ABI,
the topics each value becomes, the eth_getLogs queries and the local check of each log.

Expected topics are written out from eth-abi and keccak here, not from the module's encoder.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from function.config import load_settings
from function.core.abi import event_catalogue
from function.core.argfilters import ArgFilter, parse_arg_filters
from function.core.argtopics import apply_arg_filters
from function.core.catalogue import EventCatalogue
from function.core.topicvalues import topic_for
from function.errors import ConfigError
from minimal_env import MINIMAL

TREASURY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
VAULT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def word(abi_type: str, value: Any) -> str:
    return "0x" + encode([abi_type], [value]).hex()


def event(name: str, *inputs: tuple[str, str, bool], anonymous: bool = False) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": anonymous,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


A = "address"
ABI = [
    event("Transfer", ("from", A, True), ("to", A, True), ("value", "uint256", False)),
    event("Transfer", ("from", A, True), ("to", A, True), ("tokenId", "uint256", True)),
    event("Approval", ("owner", A, True), ("spender", A, True), ("value", "uint256", False)),
    event(
        "Noted", ("id", "uint64", True), ("delta", "int8", True), ("flag", "bool", True),
        ("tag", "string", False),
    ),
    event("Keyed", ("key", "bytes4", True), ("label", "string", True), ("blob", "bytes", True)),
    event("Listed", ("ids", "uint256[]", True)),
    event("Ping", ("who", A, True), ("n", "uint256", False), anonymous=True),
]  # fmt: skip
TRANSFER = topic0("Transfer(address,address,uint256)")
APPROVAL = topic0("Approval(address,address,uint256)")
NOTED = topic0("Noted(uint64,int8,bool,string)")


def compiled(raw: str, selected: tuple[str, ...] = ()) -> EventCatalogue:
    catalogue = event_catalogue(ABI, selected, "abi.json")
    return apply_arg_filters(catalogue, parse_arg_filters(raw), "abi.json")


def problems_of(raw: str, selected: tuple[str, ...] = ()) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        compiled(raw, selected)
    assert raised.value.exit_code == 2
    return raised.value.problems


# -- the grammar ---------------------------------------------------------------------


def test_parts_joined_by_semicolons_values_by_bars() -> None:
    parsed = parse_arg_filters(f" Transfer.to = {TREASURY} | {VAULT} ;Approval.owner={TREASURY};")
    assert parsed == (
        ArgFilter("Transfer", "to", (TREASURY, VAULT)),
        ArgFilter("Approval", "owner", (TREASURY,)),
    )
    assert parsed[0].text == f"Transfer.to={TREASURY}|{VAULT}"


def test_two_arguments_of_one_event_both_apply() -> None:
    parsed = parse_arg_filters("Transfer.from=1;Transfer.to=2")
    assert [(f.event, f.arg) for f in parsed] == [("Transfer", "from"), ("Transfer", "to")]


@pytest.mark.parametrize(
    ("raw", "bad"),
    [
        ("Transfer=0x1", "'Transfer=0x1'"),
        ("Transfer.to", "'Transfer.to'"),
        ("Transfer.to=", "'Transfer.to='"),
        ("Transfer.to=a||b", "'Transfer.to=a||b'"),
        ("Trans fer.to=a", "'Trans fer.to=a'"),
        (".to=a", "'.to=a'"),
        ("Transfer.to.x=a", "'Transfer.to.x=a'"),
    ],
)
def test_a_malformed_part_is_named_with_the_expected_form(raw: str, bad: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_arg_filters(raw)
    [line] = raised.value.problems
    assert line.startswith(f"RELAYER_ARG_FILTERS part {bad} is invalid: expected Event.argument=")


def test_every_malformed_part_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_arg_filters("A.b=1;bad;C.d=;A.b=2")
    found = raised.value.problems
    assert len(found) == 3, found
    assert all(p.startswith("RELAYER_ARG_FILTERS part ") for p in found)
    assert "'A.b=2'" in found[2] and "twice" in found[2]


def test_the_settings_carry_the_filters_and_report_them_beside_other_problems() -> None:
    settings = load_settings({**MINIMAL, "RELAYER_ARG_FILTERS": f"Transfer.to={TREASURY}"})
    assert settings.arg_filters == (ArgFilter("Transfer", "to", (TREASURY,)),)
    assert load_settings(MINIMAL).arg_filters == ()
    with pytest.raises(ConfigError) as raised:
        load_settings({**MINIMAL, "CHAIN_ID": "x", "RELAYER_ARG_FILTERS": "nope;A.b=1;C=2"})
    names = [p.split(" ", 1)[0].split("=", 1)[0] for p in raised.value.problems]
    assert names == ["CHAIN_ID", "RELAYER_ARG_FILTERS", "RELAYER_ARG_FILTERS"]


def test_a_filter_on_an_event_relayer_events_leaves_out_is_a_config_problem() -> None:
    env = {
        **MINIMAL,
        "RELAYER_EVENTS": "Transfer",
        "RELAYER_ARG_FILTERS": f"Transfer.to={TREASURY};Approval.owner={TREASURY}",
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    [line] = raised.value.problems
    assert line.startswith(f"RELAYER_ARG_FILTERS part 'Approval.owner={TREASURY}'")
    assert "RELAYER_EVENTS" in line and "add Approval to RELAYER_EVENTS" in line


# -- values as topics ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("abi_type", "value", "expected"),
    [
        ("address", TREASURY, word("address", TREASURY)),
        ("address", TREASURY.lower(), word("address", TREASURY)),
        ("address", TREASURY.upper().replace("0X", "0x"), word("address", TREASURY)),
        ("uint256", "0", word("uint256", 0)),
        ("uint256", str(2**256 - 1), word("uint256", 2**256 - 1)),
        ("uint8", "255", word("uint8", 255)),
        ("int8", "-128", word("int8", -128)),
        ("int256", "-1", "0x" + "ff" * 32),
        ("bool", "true", word("bool", True)),
        ("bool", "False", word("bool", False)),
        ("bytes4", "0xDEADbeef", word("bytes4", bytes.fromhex("deadbeef"))),
        ("bytes32", "0x" + "ab" * 32, "0x" + "ab" * 32),
        # Dynamic types are stored as the keccak of their value: a string is its text.
        ("string", "café ✓", "0x" + keccak("café ✓".encode()).hex()),
        ("bytes", "0x0102", "0x" + keccak(b"\x01\x02").hex()),
        ("bytes", "0x", "0x" + keccak(b"").hex()),
        # Arrays and tuples: the topic itself, as messages show it.
        ("uint256[]", "0x" + "CD" * 32, "0x" + "cd" * 32),
        ("(uint8,string)", "0x" + "01" * 32, "0x" + "01" * 32),
    ],
)
def test_each_value_becomes_the_topic_the_evm_writes(
    abi_type: str, value: str, expected: str
) -> None:
    assert topic_for(abi_type, value) == expected


@pytest.mark.parametrize(
    ("abi_type", "value", "expected"),
    [
        ("address", "0x1234", "an address"),
        ("address", TREASURY[:-1] + "9", "EIP-55"),  # mixed case, wrong checksum
        ("uint8", "256", "from 0 to 255"),
        ("uint256", "-1", "from 0 to"),
        ("uint256", "1e3", "decimal"),
        ("uint256", "0x10", "decimal"),
        ("int8", "128", "from -128 to 127"),
        ("bool", "yes", "true or false"),
        ("bytes4", "0xdeadbe", "0x and 8 hex digits"),
        ("bytes", "0x123", "0x and an even number of hex digits"),
        ("bytes", "hello", "0x and an even number of hex digits"),
        ("uint256[]", "0x12", "0x and 64 hex digits"),
        ("fixed128x18", "1.5", "not supported"),
    ],
)
def test_a_value_that_is_not_its_type_says_what_is_expected(
    abi_type: str, value: str, expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        topic_for(abi_type, value)


# -- against the ABI -----------------------------------------------------------------


def test_filters_go_to_their_topic_positions_in_every_layout() -> None:
    cat = compiled(f"Transfer.to={TREASURY}|{VAULT};Noted.flag=true;Noted.delta=-1")
    erc20, erc721 = cat.named[TRANSFER]
    to = frozenset({word(A, TREASURY), word(A, VAULT)})
    assert erc20.arg_topics == erc721.arg_topics == ((2, to),)
    [noted] = cat.named[NOTED]
    assert noted.arg_topics == (
        (2, frozenset({"0x" + "ff" * 32})),
        (3, frozenset({word("bool", True)})),
    )
    [approval] = cat.named[APPROVAL]
    assert approval.arg_topics == ()


def test_queries_push_filters_into_topics_and_keep_the_others_in_one() -> None:
    cat = compiled(
        f"Transfer.to={TREASURY};Approval.owner={TREASURY}|{VAULT}",
        ("Transfer", "Approval", "Noted"),
    )
    queries = cat.log_queries
    assert queries is not None
    assert queries[0] == ((NOTED,),)  # the unfiltered events, as before
    assert set(queries[1:]) == {
        ((TRANSFER,), None, (word(A, TREASURY),)),  # both layouts: one query
        ((APPROVAL,), tuple(sorted({word(A, TREASURY), word(A, VAULT)}))),
    }
    assert len(queries) == 3


def test_without_filters_one_query_of_the_topic0s_as_before() -> None:
    cat = event_catalogue(ABI, ("Transfer", "Approval"), "abi.json")
    assert cat.log_queries == ((tuple(cat.topic_filter or ()),),)
    assert not cat.filtered


def test_filters_keep_the_topic0s_even_with_every_event_selected() -> None:
    """RELAYER_ARG_FILTERS are topics the node applies: no read by address alone."""
    no_anonymous = [e for e in ABI if not e.get("anonymous")]
    assert event_catalogue(no_anonymous, (), "abi.json").every_event
    filtered = apply_arg_filters(
        event_catalogue(no_anonymous, (), "abi.json"), parse_arg_filters(f"Transfer.from={VAULT}")
    )
    assert not filtered.every_event


def test_with_every_event_filtered_no_unfiltered_query() -> None:
    cat = compiled(f"Transfer.from={VAULT}", ("Transfer",))
    assert cat.log_queries == (((TRANSFER,), (word(A, VAULT),)),)


def test_an_anonymous_event_selected_reads_every_log_and_filters_locally() -> None:
    cat = compiled(f"Ping.who={VAULT};Transfer.to={VAULT}")
    assert cat.log_queries is None  # no topic0 to query on
    [ping] = cat.anonymous
    assert ping.arg_topics == ((0, frozenset({word(A, VAULT)})),)
    n = (1).to_bytes(32, "big")
    assert cat.choose([word(A, VAULT)], n) is ping
    assert cat.choose([word(A, TREASURY)], n) is None


def test_a_log_that_does_not_match_is_not_relayed_one_that_matches_is() -> None:
    cat = compiled(f"Transfer.to={TREASURY}|{VAULT};Transfer.from={VAULT}")
    value = (5).to_bytes(32, "big")
    good = [TRANSFER, word(A, VAULT), word(A, TREASURY)]
    assert cat.choose(good, value) is not None
    assert cat.choose([TRANSFER.upper().replace("0X", "0x"), *(t.upper() for t in good[1:])], value)
    assert cat.choose([TRANSFER, word(A, TREASURY), word(A, TREASURY)], value) is None
    assert cat.choose([TRANSFER, word(A, VAULT), word(A, VAULT)], value) is not None
    # ERC721's layout: the same positions, so the same rule.
    assert cat.choose([*good, word("uint256", 7)], b"") is not None
    assert (
        cat.choose([TRANSFER, word(A, VAULT), word(A, "0x" + "00" * 20), word("uint256", 7)], b"")
        is None
    )
    # Dirty bits above an address: the node's topic filter would not match it either.
    dirty = "0x" + "01" + word(A, TREASURY)[4:]
    assert cat.choose([TRANSFER, word(A, VAULT), dirty], value) is None


def test_string_and_bytes_filters_match_their_hashes() -> None:
    cat = compiled("Keyed.label=urgent;Keyed.blob=0xbeef;Keyed.key=0x01020304")
    [keyed] = cat.named[topic0("Keyed(bytes4,string,bytes)")]
    assert dict(keyed.arg_topics) == {
        1: frozenset({word("bytes4", bytes.fromhex("01020304"))}),
        2: frozenset({"0x" + keccak(b"urgent").hex()}),
        3: frozenset({"0x" + keccak(b"\xbe\xef").hex()}),
    }


REFUTED = {
    "Transferred.to=1": "the ABI at abi.json has no event Transferred; it defines: Approval, ",
    "Transfer.recipient=1": "Transfer has no argument recipient; its indexed arguments: from, to",
    "Approval.value=1": "argument value of Approval is not indexed",
    "Transfer.tokenId=1": "argument tokenId of Transfer is missing in Transfer(address indexed "
    "from, address indexed to, uint256 value)",
    "Noted.id=-1": "value '-1' does not fit Noted.id (uint64): expected a decimal integer from 0",
    "Transfer.to=0x12": "value '0x12' does not fit Transfer.to (address): expected an address",
}


@pytest.mark.parametrize(
    ("raw", "selected", "says"),
    [
        *((raw, (), says) for raw, says in REFUTED.items()),
        (
            "Approval.owner=1",
            ("Transfer",),
            "event Approval is not relayed: RELAYER_EVENTS selects",
        ),
    ],
)
def test_a_filter_the_abi_refutes_names_the_part_and_the_fix(
    raw: str, selected: tuple[str, ...], says: str
) -> None:
    [line] = problems_of(raw, selected)
    assert line.startswith(f"RELAYER_ARG_FILTERS part {raw!r}: "), line
    assert says in line, line


def test_every_refuted_part_is_reported_at_once() -> None:
    found = problems_of(f"Nope.a=1;Transfer.to={TREASURY};Approval.value=1;Noted.flag=2")
    assert [p.split("'")[1] for p in found] == ["Nope.a=1", "Approval.value=1", "Noted.flag=2"]


# -- in a relayers file (RELAYER_CONFIG) ---------------------------------------------

FLEET_ENV = {**MINIMAL, "CONTRACT_ADDRESS": TREASURY}


def fleet_of(text: str) -> list[Any]:
    from function.ops.fleet import load_fleet

    return load_fleet(FLEET_ENV, "relayers.yaml", lambda _: text.encode())


def test_a_relayers_file_takes_filters_as_text_a_list_or_a_mapping() -> None:
    fleet = fleet_of(
        f"""
relayers:
  - RELAYER_ID: text
    RELAYER_ARG_FILTERS: "Transfer.to={TREASURY}|{VAULT};Approval.owner={VAULT}"
  - RELAYER_ID: list
    RELAYER_ARG_FILTERS: ["Transfer.to={TREASURY}|{VAULT}", "Approval.owner={VAULT}"]
  - RELAYER_ID: mapping
    RELAYER_ARG_FILTERS:
      Transfer.to: [{TREASURY}, {VAULT}]
      Approval.owner: {VAULT}
  - RELAYER_ID: none
"""
    )
    expected = (
        ArgFilter("Transfer", "to", (TREASURY, VAULT)),
        ArgFilter("Approval", "owner", (VAULT,)),
    )
    assert [s.arg_filters for s in fleet] == [expected, expected, expected, ()]


def test_a_relayers_file_reports_bad_filters_per_relayer() -> None:
    from function.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        fleet_of(
            "relayers:\n"
            "  - {RELAYER_ID: a, RELAYER_ARG_FILTERS: 'Transfer.to'}\n"
            "  - {RELAYER_ID: b, RELAYER_INCLUDE: receipts}\n"
        )
    assert raised.value.problems == (
        "RELAYER_CONFIG relayers.yaml relayers[0]: RELAYER_ARG_FILTERS part 'Transfer.to' is "
        "invalid: expected Event.argument=value[|value...], parts joined by ';' (e.g. "
        "Transfer.to=0xAbc...|0xDef...;Approval.owner=0xAbc...)",
        "RELAYER_CONFIG relayers.yaml relayers[1]: RELAYER_INCLUDE='receipts' is invalid: "
        "expected transaction, or unset",
    )


def test_status_shows_the_filters_and_what_messages_include() -> None:
    from datetime import UTC, datetime

    from devstack.sim.events import settings
    from function.ops.status import relayer_status

    now = datetime(2030, 1, 1, tzinfo=UTC)
    shaped = settings(
        arg_filters=parse_arg_filters("Tick.id=1|2;Tock.x=3"), include=("transaction",)
    )
    entry = relayer_status(shaped, {"next_block": 1}, 5, now)
    assert entry["arg_filters"] == ["Tick.id=1|2", "Tock.x=3"]
    assert entry["include"] == ["transaction"]
    plain = relayer_status(settings(), {"next_block": 1}, 5, now)
    assert plain["arg_filters"] == [] and plain["include"] == []
