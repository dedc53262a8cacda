"""Provider refusals, as real providers word them, classified; and the range tried next.

Every message below was sent by a real endpoint and is quoted from a public source (the
`source` column: an issue or pull request, or a repository file that records the body it
saw). A status of None means the source did not record the HTTP status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import pytest

from function.core.provider_errors import Failure, FailureKind, classify, error_text, next_range

RANGE = FailureKind.RANGE_TOO_LARGE
RATE = FailureKind.RATE_LIMITED
TRANSIENT = FailureKind.TRANSIENT
FATAL = FailureKind.FATAL


class Refusal(NamedTuple):
    provider: str
    source: str
    status: int | None
    code: int | None
    message: str  # the error's message, with its data appended where the hint is there
    kind: FailureKind
    suggested: tuple[int, int] | None
    limit: int | None


# One row per message, as a table: the formatter would spread each over ten lines.
# fmt: off
_ROWS = [
    # --- block-span limits and result caps of eth_getLogs ---
    ("alchemy", "BobTheBuidler/dank_mids#772", None, -32600,
     "You can make eth_getLogs requests with up to a 500 block range. Based on your parameters, "
     "this block range should work: [0x123c9b2, 0x123cba5]",
     RANGE, (0x123C9B2, 0x123CBA5), 500),
    ("alchemy free tier", "jaxernst/lasso-rpc lib/lasso/core/providers/adapters/alchemy.ex",
     None, -32600,
     "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block range. "
     "Based on your parameters, this block range should work: [0x1180fca, 0x1180fd3]. Upgrade "
     "to PAYG for expanded block range.",
     RANGE, (0x1180FCA, 0x1180FD3), 10),
    ("alchemy response size", "ethereum/go-ethereum#25343", None, -32602,
     "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
     "and no limit on the response size, or you can request any block range with a cap of 10K "
     "logs in the response. Based on your parameters and the response size limit, this block "
     "range should work: [0x0, 0x87fe9]",
     RANGE, (0x0, 0x87FE9), 2000),
    ("alchemy (2020)", "bancorprotocol/webapp#523", None, None,
     "Log response size exceeded. Please reduce query block range.", RANGE, None, None),
    ("infura range", "INFURA/infura#237", None, -32602,
     "range 1000000 exceeds limit of 10000", RANGE, None, 10000),
    ("infura results", "ponder parseGetLogsError.ts; body as quoted from ethers-io/ethers.js#4703",
     None, -32005,
     'query returned more than 10000 results. Try with this block range [0xBDE5F8, 0x102DBCC]. '
     '{"from": "0xBDE5F8", "limit": 10000, "to": "0x102DBCC"}',
     RANGE, (0xBDE5F8, 0x102DBCC), None),
    ("infura results, no hint", "status-im/nimbus-eth2#1823", None, -32005,
     "query returned more than 10000 results", RANGE, None, None),
    ("infura (2019)", "omni/token-bridge#144", None, -32005,
     "query returned more than 1000 results", RANGE, None, None),
    ("infura timeout", "rotki/rotki#8875", None, None, "query timeout exceeded", RANGE, None, None),
    ("quicknode", "eternalsafe/wallet#57, OffchainLabs/arbitrum-sdk#609", 413, -32614,
     "eth_getLogs is limited to a 10,000 range", RANGE, None, 10000),
    ("quicknode blocks", "rotki/rotki#8875 (1rpc.io/gnosis)", None, None,
     "eth_getLogs is limited to a 1000 blocks range", RANGE, None, 1000),
    ("1rpc", "jaxernst/lasso-rpc lib/lasso/core/providers/adapters/1rpc.ex", None, -32602,
     "eth_getLogs is limited to 0 - 10000 blocks range", RANGE, None, 10000),
    ("ankr", "MASQ-Project/Node node/src/blockchain/blockchain_bridge.rs; GoodDollar/GoodDAPP#4033",
     None, -32600, "block range is too wide", RANGE, None, None),
    ("ankr (tac)", "ponder-sh/ponder#1940", None, None,
     "maximum [from, to] blocks distance: 10000", RANGE, None, 10000),
    ("chainstack", "matter-labs/zksync-era#2974", None, -32602,
     "Block range limit exceeded. See more details at "
     "https://docs.chainstack.com/docs/limits#evm-range-limits",
     RANGE, None, None),
    ("base (public)", "ponder packages/utils/src/_test/base.test.ts", None, None,
     "no backend is currently healthy to serve traffic", RANGE, None, None),
    ("base (reth node)", "base/base#2421", None, -32602,
     "query exceeds max results 20000, retry with the range 25766988-25775072",
     RANGE, (25766988, 25775072), None),
    ("reth", "paradigmxyz/reth#8558", None, -32602,
     "query exceeds max block range 5000", RANGE, None, 5000),
    ("reth results", "foundry-rs/foundry#12687", None, -32602,
     "query exceeds max results 20000, retry with the range 23879634-23879696",
     RANGE, (23879634, 23879696), None),
    ("arbitrum", "ponder packages/utils/src/_test/arbitrum.test.ts", None, -32000,
     "logs matched by query exceeds limit of 10000", RANGE, None, None),
    ("publicnode", "ponder packages/utils/src/_test/publicnode.test.ts", None, None,
     "exceed maximum block range: 50000", RANGE, None, 50000),
    ("bsc (geth)", "AlphaWallet/alpha-wallet-android#2736", None, -32000,
     "exceed maximum block range: 5000", RANGE, None, 5000),
    ("blockpi", "MASQ-Project/Node blockchain_bridge.rs; foundry-rs/foundry#12687", None, -32602,
     "eth_getLogs is limited to 1024 block range. Please check the parameter requirements at  "
     "https://docs.blockpi.io/documentations/api-reference",
     RANGE, None, 1024),
    ("coinbase", "ponder packages/utils/src/_test/coinbase.test.ts", None, -32005,
     "please limit the query to at most 1000 blocks", RANGE, None, 1000),
    ("cloudflare", "ponder packages/utils/src/parseGetLogsError/parseGetLogsError.ts", None, -32047,
     "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range too large. Max range: 800",
     RANGE, None, 800),
    ("tenderly", "bobanetwork/boba_legacy#827", None, -32602,
     'invalid params {"error_id": "4ed94073-0317-4648-a167-107fba5f44b3", '
     '"payload": "range 9009594 is bigger than range limit 2000"}',
     RANGE, None, 2000),
    ("zksync", "matter-labs/zksync-era#3412", None, -32602,
     "Query returned more than 10000 results. Try with this block range [0x0, 0x30f].",
     RANGE, (0x0, 0x30F), None),
    ("zksync too big", "matter-labs/zksync-era#3412", None, -32008,
     "Response is too big", RANGE, None, None),
    ("polygon zkevm", "0xPolygon/zkevm-node#3136", None, -32602,
     "logs are limited to a 10000 block range", RANGE, None, 10000),
    ("drpc", "jaxernst/lasso-rpc adapters/drpc.ex; foundry-rs/foundry#12687", 400, 35,
     "ranges over 10000 blocks are not supported on freetier", RANGE, None, 10000),
    ("llamarpc", "foundry-rs/foundry#12687; lasso-rpc adapters/llamarpc.ex", None, -32603,
     "eth_getLogs range is too large, max is 1k blocks", RANGE, None, 1000),
    ("moonbeam", "moonbeam-foundation/moonbeam#3250", None, None,
     "block range is too wide (maximum 1024)", RANGE, None, 1024),
    ("morph (geth fork)", "enviodev/hyperindex#605", None, -32000,
     "block range is larger than max block range, block range = 5120, max block range = 5000",
     RANGE, None, 5000),
    ("arc", "circlefin/arc-node#383", None, -32600,
     "Query exceeds max block range of 10000", RANGE, None, 10000),
    ("scroll", "scroll-tech/go-ethereum#529", None, -32000,
     "block range is bigger than maxBlockRange", RANGE, None, None),
    ("candle", "AlphaWallet/alpha-wallet-ios#5277", None, -32600,
     "block range too high", RANGE, None, None),
    ("pokt", "MASQ-Project/Node blockchain_bridge.rs", None, -32064,
     "You cannot query logs for more than 100000 blocks at once.", RANGE, None, 100000),
    ("pokt relay", "MASQ-Project/Node blockchain_bridge.rs", None, -32001,
     "Relay request failed validation: invalid relay request: eth_getLogs block range limit "
     "(100000 blocks) exceeded",
     RANGE, None, 100000),
    ("maticvigil", "MASQ-Project/Node blockchain_bridge.rs", None, -32005,
     "Blockheight too far in the past. Check params passed to eth_getLogs or eth_call requests."
     "Range of blocks allowed for your plan: 1000",
     RANGE, None, 1000),
    ("unnamed (MASQ log)", "MASQ-Project/Node blockchain_bridge.rs", None, -32005,
     "eth_getLogs block range too large, range: 33636, max: 3500", RANGE, None, 3500),
    ("aurora", "aurora-is-near/aurora-relayer#327", None, -32005,
     "query returned more than 10000 results", RANGE, None, None),
    # --- rate limits ---
    ("alchemy", "conduitxyz/node#36", 429, 429,
     "Your app has exceeded its compute units per second capacity. If you have retries "
     "enabled, you can safely ignore this message. If not, check out "
     "https://docs.alchemy.com/reference/throughput",
     RATE, None, None),
    ("infura daily", "gochain/web3#180", 429, -32005,
     'daily request count exceeded, request rate limited {"rate": {"allowed_rps": 1, '
     '"backoff_seconds": 0, "current_rps": 2.2}, "see": "https://infura.io/dashboard"}',
     RATE, None, None),
    ("infura legacy", "herdius/herdius-core#58", 429, -32005,
     "legacy access request rate exceeded", RATE, None, None),
    ("infura project", "ConsenSys-archive/truffle#3200", None, -32005,
     "project ID request rate exceeded", RATE, None, None),
    ("quicknode", "erpc/erpc tests; foundry-rs/foundry#4894", 429, -32007,
     "300/second request limit reached - reduce calls per second or upgrade your account at "
     "quicknode.com",
     RATE, None, None),
    ("base sepolia (HTTP 200)", "foundry-rs/foundry#4894 wording, as sepolia.base.org sends it",
     200, -32007, "25/second request limit reached - reduce calls per second", RATE, None, None),
    ("ankr", "public test of Ankr's HTTP 429 body", 429, -32090,
     "Too many requests, reason: call rate limit exhausted, retry in 10s", RATE, None, None),
    ("eip-1474", "EIP-1474 'limit exceeded'", None, -32005, "limit exceeded", RATE, None, None),
    ("plain", "generic HTTP 429 page", 429, None, "Too Many Requests", RATE, None, None),
    # --- transient: the same call may work on the next try or the next endpoint ---
    ("geth behind a balancer", "bnb-chain/bsc#1054; ethersphere/bee#1919 (Infura)", None, -32000,
     "header not found", TRANSIENT, None, None),
    ("geth head race", "ethereum/execution-apis test fixture (eth_getLogs beyond head)",
     None, -32602, "block range extends beyond current head block", TRANSIENT, None, None),
    ("anvil", "measured: eth_getLogs by an unknown blockHash", 200, -32000,
     "unknown block", TRANSIENT, None, None),
    ("nginx", "load balancer page", 502, None,
     "<html><head><title>502 Bad Gateway</title></head></html>", TRANSIENT, None, None),
    ("balancer", "HTTP 503", 503, None, "Service Unavailable", TRANSIENT, None, None),
    ("balancer", "HTTP 504", 504, None, "", TRANSIENT, None, None),
    ("empty body", "requests: 200 with no body", 200, None, "", TRANSIENT, None, None),
    ("network", "requests.ConnectionError", None, None,
     "ConnectionError talking to rpc.example", TRANSIENT, None, None),
    ("geth", "JSON-RPC internal error", None, -32603, "internal error", TRANSIENT, None, None),
    # --- fatal: retrying cannot help ---
    ("infura", "graphprotocol/indexer#145", 401, None, "invalid project id\n", FATAL, None, None),
    ("infura", "xclud/web3dart#15", None, -32002,
     "rejected due to project ID settings", FATAL, None, None),
    ("alchemy billing", "xmtp/xmtpd#672", 403, -32600,
     "Monthly capacity limit exceeded. Visit https://dashboard.alchemyapi.io/settings/billing "
     "to upgrade your scaling policy for continued service.",
     FATAL, None, None),
    ("alchemy", "kleros/kleros-v2#1100", None, -32000, "App is inactive", FATAL, None, None),
    ("geth", "go-ethereum rpc 'invalid argument N' errors", None, -32602,
     "invalid argument 0: hex string without 0x prefix", FATAL, None, None),
    ("any", "-32602 without a range message", None, -32602, "invalid params", FATAL, None, None),
    ("geth", "go-ethereum filters errInvalidBlockRange", None, -32602,
     "invalid block range params", FATAL, None, None),
    ("blastapi", "MASQ-Project/Node blockchain_bridge.rs", None, -32601,
     "Method not found 'eth_getLogs' is not available on our public API. Head over to "
     "https://docs.blastapi.io/blast-documentation/tutorials-and-guides/using-blast-to-get-a-"
     "blockchain-endpoint for more information",
     FATAL, None, None),
    ("arbitrum goerli", "graphprotocol/support#109", None, -32602,
     "1001 addresses specified in query, but only 1000 are allowed", FATAL, None, None),
    ("path", "HTTP 404", 404, None, "404 page not found", FATAL, None, None),
]
# fmt: on
REFUSALS = [Refusal(*row) for row in _ROWS]


def _id(row: Refusal) -> str:
    return f"{row.provider}: {row.message[:40]}"


@pytest.mark.parametrize("row", REFUSALS, ids=_id)
def test_classify_real_refusals(row: Refusal) -> None:
    failure = classify(row.status, row.code, row.message)

    assert (failure.kind, failure.suggested, failure.max_range) == (
        row.kind,
        row.suggested,
        row.limit,
    )


# The order of the rules, on made-up combinations no single provider sent.
RULES = {
    "range text beats a 5xx": (500, None, "block range is too wide", RANGE),
    "range text beats -32005": (None, -32005, "query returned more than 10000 results", RANGE),
    "transient text beats Alchemy's 400": (400, -32000, "header not found", TRANSIENT),
    "bare 413 is a range refusal": (413, None, "", RANGE),
    "401 is fatal whatever it says": (401, None, "Service Unavailable", FATAL),
    "bare 400 is fatal": (400, None, "Bad Request", FATAL),
    "408 is transient": (408, None, "Request Timeout", TRANSIENT),
    "unknown -32000 is transient": (None, -32000, "something odd happened", TRANSIENT),
    "-32600 without a range is fatal": (None, -32600, "Invalid Request", FATAL),
    "a bracketed range is not a suggestion by itself": (
        None,
        -32000,
        "requested block range [0x1000, 0x2000] is beyond latest executed block 4000",
        TRANSIENT,
    ),
}


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"), list(RULES.values()), ids=list(RULES)
)
def test_rule_order(status: int | None, code: int | None, message: str, kind: FailureKind) -> None:
    assert classify(status, code, message).kind is kind


NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
WAITS = {
    "header in seconds": (429, None, "Too Many Requests", "3", 3.0),
    "header as HTTP-date": (429, None, "", "Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
    "HTTP-date in the past": (429, None, "", "Fri, 27 Nov 2026 11:00:00 GMT", 0.0),
    "header beats text": (429, -32090, "retry in 10s", "1", 1.0),
    "garbage header, then text": (429, -32090, "retry in 10s", "soon", 10.0),
    "ankr, go duration": (429, -32090, "call rate limit exhausted, retry in 10s", None, 10.0),
    "polygon, minutes": (429, None, "call rate limit exhausted, retry in 10m0s", None, 600.0),
    "infura backoff_seconds": (429, -32005, 'rate limited {"backoff_seconds": 2.5}', None, 2.5),
    "no hint": (429, 429, "Your app has exceeded its compute units", None, None),
    "503 with Retry-After": (503, None, "Service Unavailable", "7", 7.0),
}


@pytest.mark.parametrize(
    ("status", "code", "message", "header", "wait"), list(WAITS.values()), ids=list(WAITS)
)
def test_retry_after(
    status: int, code: int | None, message: str, header: str | None, wait: float | None
) -> None:
    assert classify(status, code, message, header, now=NOW).retry_after_s == wait


def _range(suggested: tuple[int, int] | None = None, limit: int | None = None) -> Failure:
    return Failure(RANGE, suggested=suggested, max_range=limit)


NEXT = {
    "suggestion inside the range": (100, 1099, _range((100, 599)), 599),
    "suggestion wins over the limit": (100, 1099, _range((100, 149), 500), 149),
    "suggestion starting later keeps its width": (100, 1099, _range((200, 299)), 199),
    "suggestion echoing the request: halve": (100, 1099, _range((100, 1099)), 599),
    "suggestion past the end: use the limit": (100, 1099, _range((100, 5000), 500), 599),
    "suggestion before the start: halve": (100, 1099, _range((0, 50)), 599),
    "limit as an inclusive count": (100, 1099, _range(limit=500), 599),
    "limit of one block": (100, 1099, _range(limit=1), 100),
    "limit not smaller than the range: halve": (100, 1099, _range(limit=2000), 599),
    "no hint: halve": (100, 1099, _range(), 599),
    "two blocks: one": (100, 101, _range(), 100),
    "one block cannot shrink": (100, 100, _range(), 100),
    "rate limit keeps the range": (100, 1099, Failure(RATE, retry_after_s=1.0), 1099),
    "transient keeps the range": (100, 1099, Failure(TRANSIENT), 1099),
}


@pytest.mark.parametrize(
    ("start", "end", "failure", "expected"), list(NEXT.values()), ids=list(NEXT)
)
def test_next_range(start: int, end: int, failure: Failure, expected: int) -> None:
    assert next_range(start, end, failure) == expected


@pytest.mark.parametrize("row", [r for r in REFUSALS if r.kind == RANGE], ids=_id)
def test_every_real_range_refusal_shrinks_a_wide_range(row: Refusal) -> None:
    failure = classify(row.status, row.code, row.message)
    start, end = 0x1000000, 0x1000000 + 200_000

    new_end = next_range(start, end, failure)

    assert start <= new_end < end


def test_next_range_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="empty block range"):
        next_range(10, 9, _range())


ERROR_TEXTS = {
    "message only": ({"code": -32000, "message": "header not found"}, "header not found"),
    "string data": (
        {
            "code": -32602,
            "message": "invalid params",
            "data": "range 20000 is bigger than range limit 2000",
        },
        "invalid params range 20000 is bigger than range limit 2000",
    ),
    "object data": (
        {"code": -32005, "message": "limited", "data": {"rate": {"backoff_seconds": 1}}},
        'limited {"rate": {"backoff_seconds": 1}}',
    ),
    "empty data": ({"message": "x", "data": ""}, "x"),
    "not an object": ("plain text error", "plain text error"),
}


@pytest.mark.parametrize(("error", "text"), list(ERROR_TEXTS.values()), ids=list(ERROR_TEXTS))
def test_error_text_joins_message_and_data(error: object, text: str) -> None:
    assert error_text(error) == text


def test_thirdweb_hint_in_data_is_found_through_error_text() -> None:
    # ponder parseGetLogsError.ts: thirdweb puts the limit in `data`, the message says little.
    error = {
        "code": -32602,
        "message": "invalid params",
        "data": "range 20000 is bigger than range limit 2000",
    }

    failure = classify(200, -32602, error_text(error))

    assert (failure.kind, failure.max_range) == (RANGE, 2000)
