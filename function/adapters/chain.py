"""What a run asks of the chain: its head, block headers and the logs of a range.

Every answer is checked before it is used: a missing block, a log outside the requested
range or from another address, a log without its fields, or two different logs at one
(blockHash, logIndex) is the endpoint's failure (it lags, or it is broken: Erigon 3 on Polygon
did the last), so the request is retried or sent to the next endpoint instead of being relayed
as data. An exact copy of a log in one answer (seen on Darwinia) is dropped with a warning:
the decoder never sees one event twice, so it is never published twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

from function.adapters.jsonrpc.client import Call, JsonRpc
from function.core.catalogue import TopicQuery
from function.core.model import Header, RawLog, chain_position, in_chain_order, unique_logs
from function.core.planning import BlockRange
from function.errors import RpcError

log = logging.getLogger(__name__)


def _known_block(answer: Any) -> None:
    if not isinstance(answer, dict) or not answer.get("hash"):
        raise ValueError("the node does not know this block yet (it lags behind)")


def _block(tag_or_number: str | int, check: bool = True) -> Call:
    tag = hex(tag_or_number) if isinstance(tag_or_number, int) else tag_or_number
    return Call("eth_getBlockByNumber", [tag, False], _known_block if check else None)


def _head_call(tag: str) -> Call:
    return Call("eth_blockNumber", []) if tag == "latest" else _block(tag)


def _header(block: Any) -> Header:
    return Header(int(block["number"], 16), str(block["hash"]).lower(), int(block["timestamp"], 16))


class _LogsCheck:
    """The check of an eth_getLogs answer, run by the client on every answer it receives.
    It keeps what it learnt of the last one it passed (`passed`): whether that answer was
    `plain`, each log once and in chain order, so the reader need not look at every log
    again (a busy window's answer holds thousands)."""

    def __init__(self, blocks: BlockRange, addresses: Sequence[str] | None) -> None:
        self.blocks = blocks
        self.wanted = None if addresses is None else {a.lower() for a in addresses}
        self.passed: Any = None
        self.plain = False

    def __call__(self, logs: Any) -> None:
        blocks, wanted = self.blocks, self.wanted
        self.passed, self.plain = None, False
        if not isinstance(logs, list):
            raise ValueError(f"a {type(logs).__name__} instead of a list of logs")
        seen: dict[tuple[str, int], Any] = {}
        # A block's logs repeat its number and hash, a contract's its address: each raw
        # string is checked once (a busy answer holds thousands of logs of a few blocks).
        numbers: dict[str, int] = {}  # in the request's range
        hashes: dict[str, str] = {}
        asked: set[str] = set()  # addresses as answered, among those asked for
        plain = True
        last = (-1, -1)

        def outside(number: int, address: str) -> ValueError:
            return ValueError(
                f"a log of block {number} from {address}, outside the request "
                f"({blocks.start}..{blocks.end})"
            )

        for entry in logs:
            raw = entry["blockNumber"]
            number = numbers.get(raw)
            if number is None:
                number = int(raw, 16)
                if number not in blocks:
                    raise outside(number, entry["address"])
                numbers[raw] = number
            address = entry["address"]
            if wanted is not None and address not in asked:
                if address.lower() not in wanted:
                    raise outside(number, address)
                asked.add(address)
            if (
                entry.get("removed")
                or not entry["blockHash"]
                or not entry["transactionHash"]
                or entry["logIndex"] is None
                or entry["transactionIndex"] is None
                or entry["data"] is None
                or not isinstance(entry["topics"], list)
            ):
                raise ValueError(f"an incomplete or removed log: {dict(entry)!r:.200}")
            block_hash = entry["blockHash"]
            lower = hashes.get(block_hash)
            if lower is None:
                lower = hashes[block_hash] = str(block_hash).lower()
            index = int(entry["logIndex"], 16)
            key = (lower, index)
            first = seen.setdefault(key, entry)
            if first is not entry:
                plain = False  # a repeat: an exact copy, or refused just below
                if first != entry:  # `!=` compares even an object to itself
                    raise ValueError(
                        f"two different logs at index {index} of block {number} ({lower})"
                    )
            elif plain:
                position = (number, index)
                plain = position > last
                last = position
        self.passed, self.plain = logs, plain


def _logs_call(
    blocks: BlockRange, addresses: Sequence[str] | None, topics: TopicQuery | None
) -> Call:
    """None for `addresses`: every contract's logs with the topics (RELAYER_FACTORY with
    many children, filtered by the run)."""
    params: dict[str, Any] = {"fromBlock": hex(blocks.start), "toBlock": hex(blocks.end)}
    if addresses is not None:
        params["address"] = list(addresses)
    if topics is not None:  # None: every log of the addresses (anonymous events selected)
        params["topics"] = [None if t is None else list(t) for t in topics]
    return Call("eth_getLogs", [params], _LogsCheck(blocks, addresses))


class ChainReader:
    """Reads the chain through a `JsonRpc`."""

    def __init__(self, rpc: JsonRpc) -> None:
        self._rpc = rpc

    @property
    def host(self) -> str:
        return self._rpc.host

    @property
    def rpc(self) -> JsonRpc:
        """The client it reads through: the transactions reader shares its endpoints."""
        return self._rpc

    def head(self, tag: str = "latest") -> int:
        """The newest block number, or the node's `safe`/`finalized` block."""
        return self._head_value(tag, self._rpc.call(*_fields(_head_call(tag))))

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        """The head and one header in one round trip (the checkpoint's block, for reorgs).
        No header when the node has not reached that block: it lags, nothing reorganised."""
        calls = [_head_call(tag)]
        if number is not None:
            calls.append(_block(number, check=False))
        results = self._rpc.batch(calls)
        head = self._head_value(tag, results[0])
        if number is None or number > head:
            return head, None
        if not isinstance(results[1], dict):
            raise RpcError(f"the node on {self.host} reports head {head} but not block {number}")
        return head, _header(results[1])

    def latest_and_header(self, number: int | None) -> tuple[Header, Header | None]:
        """The newest block and one other (the checkpoint's), for lag in blocks and time."""
        calls = [_block("latest")]
        if number is not None and number >= 0:
            calls.append(_block(number, check=False))
        results = self._rpc.batch(calls)
        other = results[1] if len(results) > 1 else None
        return _header(results[0]), _header(other) if isinstance(other, dict) else None

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        """Headers of several blocks in one batch."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        blocks = self._rpc.batch([_block(n) for n in wanted])
        return {n: _header(b) for n, b in zip(wanted, blocks, strict=True)}

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        """The logs of a range and some headers, in one request to one endpoint.

        The range's last block always comes along: an endpoint that knows it has all the
        range's logs, so a lagging node behind a load balancer cannot silently cut them.
        `queries`, when given, are the topics of several eth_getLogs sent in the same batch
        instead of the one `topic0s` makes (RELAYER_ARG_FILTERS: a query per filtered
        event); each goes right after a copy of the range end's header, so a batch the node
        makes us cut keeps each query with it. Their logs come merged, each once.
        """
        if queries is None:
            queries = [None if topic0s is None else (tuple(topic0s),)]
        numbers = sorted(set(header_numbers) - {blocks.end})
        calls = [_block(n) for n in numbers]
        for query in queries:
            calls += [_block(blocks.end), _logs_call(blocks, addresses, query)]
        answers = self._rpc.batch(calls)
        headers = self._headers(blocks, numbers, answers)
        if len(queries) == 1:
            check, answer = calls[-1].check, answers[-1]
            if isinstance(check, _LogsCheck) and check.passed is answer and check.plain:
                # Its check saw each log once, in chain order: nothing to remove or sort.
                return headers, cast(list[RawLog], answer)
        merged: list[RawLog] = []
        for answer in answers[len(numbers) + 1 :: 2]:
            logs = unique_logs(cast(list[RawLog], answer))
            if len(logs) < len(answer):
                log.warning(
                    "RPC endpoint %s repeated %d logs in one eth_getLogs answer (blocks %d..%d): "
                    "relaying each once",
                    self.host,
                    len(answer) - len(logs),
                    blocks.start,
                    blocks.end,
                )
            merged += logs
        if len(queries) == 1:
            # One answer, its repeats already gone: only its order to make sure of (each
            # pass parses every log's hash and index, 20 ms of a 20,000-log window).
            merged.sort(key=chain_position)
            return headers, merged
        # Queries may overlap: two layouts of one filtered event.
        return headers, in_chain_order(merged)

    def _headers(
        self, blocks: BlockRange, numbers: Sequence[int], answers: Sequence[Any]
    ) -> dict[int, Header]:
        """The headers asked for, and the range end's, the same in every copy of it."""
        headers = {n: _header(b) for n, b in zip(numbers, answers, strict=False)}
        ends = {_header(answers[i]) for i in range(len(numbers), len(answers), 2)}
        if len(ends) > 1:
            raise RpcError(
                f"RPC endpoint {self.host} answered one read of blocks {blocks.start}.."
                f"{blocks.end} from different chains (block {blocks.end} as "
                f"{' and '.join(sorted(h.hash for h in ends))}): the next run reads it again"
            )
        headers[blocks.end] = ends.pop()
        return headers

    def _head_value(self, tag: str, answer: Any) -> int:
        return int(answer, 16) if tag == "latest" else int(answer["number"], 16)


def _fields(call: Call) -> tuple[str, list[Any], Any]:
    return call.method, call.params, call.check
