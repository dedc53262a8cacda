"""The chain of the follow phase: anvil mining a block a second, escrow events on a steady
schedule, and the wall time at which each block could first be read.

`BlockClock` asks the node for its head every 20 ms and notes, per block, the wall time
(`time.time()`, the clock the Pub/Sub emulator stamps `publish_time` with, on this machine)
at which it was first reported: when a relayer could first have seen it. Block timestamps
are whole seconds (anvil stamps the second the block was sealed in), too coarse for
latencies of a second or two; they are kept only to show how far the two clocks lie apart.

`SteadyEmitter` sends one escrow `create` every `every_s` from anvil's first account without
waiting for it to be mined (interval mining seals what is pending every second), so events
arrive at the steady rate a busy contract would emit them; `landed()` reads the receipts
afterwards: where each event went, in chain order.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from bench.measure import BenchError

_CREATE = keccak(text="create(address,uint256,string,bytes32,address[])")[:4]
_GAS = 300_000
_MAX_FEE = 100 * 10**9  # far above anvil's base fee, so no transaction waits for a cheaper block
_PRIORITY_FEE = 10**9


class Rpc:
    """Plain JSON-RPC over one session (no proxies from the environment)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session = requests.Session()
        self._session.trust_env = False
        self._ids = 0

    def call(self, method: str, *params: Any) -> Any:
        self._ids += 1
        body: dict[str, Any] = {
            "jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params),
        }  # fmt: skip
        reply = self._session.post(self.url, json=body, timeout=30).json()
        if "error" in reply:
            raise BenchError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        self._session.close()


class BlockClock(threading.Thread):
    """When each block was first reported by the node (wall time, seconds since the epoch)."""

    def __init__(self, url: str, poll_s: float = 0.02) -> None:
        super().__init__(name="block-clock", daemon=True)
        self._rpc = Rpc(url)
        self._poll_s = poll_s
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}
        self.first = int(self._rpc.call("eth_blockNumber"), 16)  # seen before we looked: no time

    def run(self) -> None:
        last = self.first
        while not self._halt.wait(self._poll_s):
            head = int(self._rpc.call("eth_blockNumber"), 16)
            now = time.time()
            with self._lock:
                for n in range(last + 1, head + 1):
                    self._seen[n] = now
            last = max(last, head)

    def seen(self, block: int) -> float | None:
        with self._lock:
            return self._seen.get(block)

    def head(self) -> int:
        with self._lock:
            return max(self._seen, default=self.first)

    def wait_for(self, block: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.seen(block) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"block {block} was not mined within {timeout_s:g} s")
            time.sleep(self._poll_s)

    def offsets_from_timestamps(self, blocks: range) -> list[float]:
        """Seen time minus the block's own timestamp, for blocks this clock saw."""
        out = []
        for n in blocks:
            seen = self.seen(n)
            if seen is not None:
                block = self._rpc.call("eth_getBlockByNumber", hex(n), False)
                out.append(seen - int(block["timestamp"], 16))
        return out

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
        self._rpc.close()


@dataclass(frozen=True)
class Landed:
    """One emitted event: where it landed."""

    event_id: str
    block_number: int
    log_index: int


class SteadyEmitter(threading.Thread):
    """One escrow event every `every_s` seconds until `stop_at` (monotonic)."""

    def __init__(self, url: str, escrow: str, every_s: float, stop_at: float) -> None:
        super().__init__(name="steady-emitter", daemon=True)
        self._rpc = Rpc(url)
        self._escrow = escrow
        self._every_s = every_s
        self._stop_at = stop_at
        self._hashes: list[str] = []
        self.error: BaseException | None = None
        accounts = self._rpc.call("eth_accounts")
        self._sender, self._seller = accounts[0], accounts[1]
        self._nonce = int(self._rpc.call("eth_getTransactionCount", self._sender, "pending"), 16)
        self._chain_id = int(self._rpc.call("eth_chainId"), 16)

    def run(self) -> None:
        try:
            due = time.monotonic()
            while due < self._stop_at:
                self._send(len(self._hashes))
                due += self._every_s
                time.sleep(max(0.0, due - time.monotonic()))
        except BaseException as e:  # reported by landed(): a thread cannot raise to the bench
            self.error = e

    def _send(self, i: int) -> None:
        args = encode(
            ["address", "uint256", "string", "bytes32", "address[]"],
            [self._seller, 1000 + i, f"follow #{i}", keccak(text=str(i)), []],
        )
        tx = {
            "from": self._sender, "to": self._escrow, "value": "0x0", "nonce": hex(self._nonce),
            "data": "0x" + (_CREATE + args).hex(), "gas": hex(_GAS),
            "maxFeePerGas": hex(_MAX_FEE), "maxPriorityFeePerGas": hex(_PRIORITY_FEE),
            "chainId": hex(self._chain_id),
        }  # fmt: skip
        self._hashes.append(self._rpc.call("eth_sendTransaction", tx))
        self._nonce += 1

    def landed(self, timeout_s: float = 15.0) -> list[Landed]:
        """Every event emitted, in chain order, once all are mined."""
        self.join()
        if self.error is not None:
            raise BenchError(f"the emitter failed: {self.error}") from self.error
        deadline = time.monotonic() + timeout_s
        out: list[Landed] = []
        for tx_hash in self._hashes:
            while (receipt := self._rpc.call("eth_getTransactionReceipt", tx_hash)) is None:
                if time.monotonic() > deadline:
                    raise BenchError(f"{tx_hash} not mined within {timeout_s:g} s")
                time.sleep(0.1)
            if int(receipt["status"], 16) != 1 or len(receipt["logs"]) != 1:
                raise BenchError(f"{tx_hash} did not emit one EscrowCreated")
            log = receipt["logs"][0]
            out.append(
                Landed(
                    f"{self._chain_id}:{log['blockHash'].lower()}:{int(log['logIndex'], 16)}",
                    int(log["blockNumber"], 16),
                    int(log["logIndex"], 16),
                )
            )
        self._rpc.close()
        return sorted(out, key=lambda e: (e.block_number, e.log_index))
