"""What a run asks of the chain: its head, block headers and the logs of a range."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from .errors import RpcError
from .planning import BlockRange
from .records import BlockRef, RawLog
from .rpc import Call, JsonRpc


@dataclass(frozen=True, slots=True)
class Header:
    """The parts of a block header the relayer uses."""

    number: int
    hash: str
    timestamp: int

    @property
    def ref(self) -> BlockRef:
        return BlockRef(self.number, self.hash)


def _head_call(tag: str) -> Call:
    if tag == "latest":
        return ("eth_blockNumber", [])
    return ("eth_getBlockByNumber", [tag, False])


def _logs_call(blocks: BlockRange, addresses: Sequence[str], topic0s: Sequence[str]) -> Call:
    params = {
        "fromBlock": hex(blocks.start),
        "toBlock": hex(blocks.end),
        "address": list(addresses),
        "topics": [list(topic0s)],
    }
    return ("eth_getLogs", [params])


def _header(number: int, block: Any) -> Header:
    if not isinstance(block, dict) or "hash" not in block:
        raise RpcError(f"the node has no block {number} (it may lag behind or have pruned it)")
    return Header(int(block["number"], 16), str(block["hash"]).lower(), int(block["timestamp"], 16))


class ChainReader:
    """Reads the chain through a `JsonRpc`, checking what it gets back."""

    def __init__(self, rpc: JsonRpc) -> None:
        self._rpc = rpc

    @property
    def host(self) -> str:
        return self._rpc.host

    def head(self, tag: str = "latest") -> int:
        """The newest block number, or the node's `safe`/`finalized` block."""
        return self._head_value(tag, self._rpc.call(*_head_call(tag)))

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        """The head and one header in one round trip (the checkpoint's block, for reorgs)."""
        calls = [_head_call(tag)]
        if number is not None:
            calls.append(("eth_getBlockByNumber", [hex(number), False]))
        results = self._rpc.batch_results(calls)
        head = self._head_value(tag, results[0])
        if number is None or number > head or isinstance(results[1], Exception):
            return head, None
        return head, _header(number, results[1])

    def latest_and_header(self, number: int | None) -> tuple[Header, Header | None]:
        """The newest block and one other (the checkpoint's), for lag in blocks and time."""
        calls = [("eth_getBlockByNumber", ["latest", False])]
        if number is not None and number >= 0:
            calls.append(("eth_getBlockByNumber", [hex(number), False]))
        results = self._rpc.batch_results(calls)
        latest = results[0]
        if isinstance(latest, Exception):
            raise latest
        head = _header(-1, latest)
        other = results[1] if len(results) > 1 else None
        if other is None or isinstance(other, Exception) or not isinstance(other, dict):
            return head, None
        return head, _header(number or 0, other)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        """Headers of several blocks in one batch."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        blocks = self._rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in wanted])
        return {n: _header(n, b) for n, b in zip(wanted, blocks, strict=True)}

    def header_and_logs(
        self, blocks: BlockRange, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> tuple[Header, list[RawLog]]:
        """The header of the range's last block, then the range's logs, in one round trip."""
        header, logs = self._rpc.batch(
            [
                ("eth_getBlockByNumber", [hex(blocks.end), False]),
                _logs_call(blocks, addresses, topic0s),
            ]
        )
        return _header(blocks.end, header), self._checked_logs(logs, blocks, addresses)

    def get_logs(
        self, blocks: BlockRange, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[RawLog]:
        """Every log of the contracts and events in the range, sorted in chain order."""
        logs = self._rpc.call(*_logs_call(blocks, addresses, topic0s))
        return self._checked_logs(logs, blocks, addresses)

    def _checked_logs(
        self, logs: Any, blocks: BlockRange, addresses: Sequence[str]
    ) -> list[RawLog]:
        if not isinstance(logs, list):
            raise RpcError(f"eth_getLogs on {self.host} answered a {type(logs).__name__}")
        wanted = {a.lower() for a in addresses}
        for entry in cast(list[RawLog], logs):
            self._check(entry, blocks, wanted)
        logs.sort(key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16)))
        return cast(list[RawLog], logs)

    def _check(self, entry: RawLog, blocks: BlockRange, addresses: set[str]) -> None:
        # A log that cannot be right is the endpoint's failure, never data to relay.
        try:
            number = int(entry["blockNumber"], 16)
            ok = (
                number in blocks
                and entry["address"].lower() in addresses
                and bool(entry["blockHash"])
                and bool(entry["transactionHash"])
                and entry["logIndex"] is not None
                and entry["transactionIndex"] is not None
                and entry["data"] is not None
                and not entry.get("removed", False)
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise RpcError(
                f"eth_getLogs on {self.host} returned a log that cannot be right for blocks "
                f"{blocks.start}..{blocks.end}: {dict(entry)!r:.300}"
            )

    def _head_value(self, tag: str, answer: Any) -> int:
        if isinstance(answer, Exception):
            raise answer
        if tag == "latest":
            return int(answer, 16)
        if not isinstance(answer, dict):
            raise RpcError(f"the node on {self.host} has no {tag!r} block (RELAYER_HEAD={tag})")
        return int(answer["number"], 16)
