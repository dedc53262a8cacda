"""The chains the benchmark reads: one busy with escrow events, one long and empty, one with
100,000 events for the peak-RSS measure.

Separate anvils, because anvil slows down as its state grows: after 20,000 events every block
costs ~60 ms to mine, so 100,000 empty blocks go on a second, fresh chain (cancun, bare
`--prune-history`: ~2.5 s for `anvil_mine 100000`). Driving the escrow to 100,000 events
would take minutes, so the third chain replays real escrow logs through `LogEmitter`
(`emitLogs`: thousands of logs in one transaction): the same topics and data the escrow
emits, from the emitter's address, which the relayer reads with the escrow's ABI.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_utils.abi import function_abi_to_4byte_selector
from web3 import Web3
from web3.types import RPCEndpoint

from devstack.chain.emitter import Emitter, load_emitter_artifact
from devstack.chain.escrow import ExpectedEvent, deploy_escrow, make_activity
from devstack.stack.services import Anvil, start_anvil

MANY_GAS_LIMIT = 200_000_000  # per block and transaction on the many-events anvil
LOGS_PER_TX = 2_000  # logs per emitLogs transaction: ~3.7 MB of JSON, below what anvil accepts


@dataclass
class Chain:
    """An anvil with a deployed escrow; `first_block..head` is what the bench reads."""

    anvil: Anvil
    w3: Web3
    contract: str
    first_block: int  # first block after the deployment
    head: int
    expected: list[ExpectedEvent] = field(default_factory=list)
    # The empty chain's: empty blocks mined before `first_block` (after the deployment),
    # which a relayer with a past relays before the measured scan.
    history: int = 0

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    @property
    def blocks(self) -> int:
        return self.head - self.first_block + 1

    def stop(self) -> None:
        self.anvil.stop()


def _deployed(extra_args: tuple[str, ...] = ()) -> tuple[Anvil, Web3, str, int]:
    anvil = start_anvil(prune_history=0, extra_args=extra_args)
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 120}))
        contract = deploy_escrow(w3)
        return anvil, w3, contract, int(w3.eth.block_number) + 1
    except BaseException:
        anvil.stop()
        raise


def events_chain(n_events: int, blocks: int, seed: int = 7) -> Chain:
    """A fresh anvil whose escrow emitted `n_events` over about `blocks` blocks."""
    anvil, w3, contract, first = _deployed()
    try:
        expected = make_activity(w3, contract, n_events, blocks=blocks, seed=seed)
        return Chain(anvil, w3, contract, first, int(w3.eth.block_number), expected)
    except BaseException:
        anvil.stop()
        raise


def empty_chain(n_blocks: int, history: int = 0) -> Chain:
    """A fresh anvil with an escrow and then `history` + `n_blocks` empty blocks, the last
    `n_blocks` the measured ones."""
    anvil, w3, contract, first = _deployed()
    try:
        reply = w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(history + n_blocks)])
        if "error" in reply:
            raise RuntimeError(f"anvil_mine failed: {reply['error']}")
        head = int(w3.eth.block_number)
        return Chain(anvil, w3, contract, first + history, head, history=history)
    except BaseException:
        anvil.stop()
        raise


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply["result"]


def _mined(w3: Web3, tx_hash: str, timeout_s: float = 60.0) -> None:
    """Wait for a transaction to be sealed (automine seals a large one a moment after
    eth_sendTransaction answers) and check it succeeded; the raw receipt, not web3's, whose
    formatting of thousands of logs costs a second."""
    deadline = time.monotonic() + timeout_s
    while (receipt := _rpc(w3, "eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"transaction {tx_hash} not mined after {timeout_s:g} s")
        time.sleep(0.02)
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"emitLogs failed in block {int(receipt['blockNumber'], 16)}")


def many_events_chain(n_events: int, *, per_tx: int = LOGS_PER_TX, templates: int = 200) -> Chain:
    """A fresh anvil whose `LogEmitter` emitted `n_events` escrow logs, `per_tx` a block.

    The escrow is driven for `templates` real events first; their topics and data are
    replayed in turn. Every transaction carries the same calldata (encoded once), so the
    chain is made in seconds; the events differ by block hash and log index (their event
    ids), not by their arguments. `Chain.contract` is the emitter; `first_block..head` holds
    exactly the replayed events; `expected` stays empty (the count is what is checked)."""
    anvil, w3, escrow, _ = _deployed(("--gas-limit", str(MANY_GAS_LIMIT)))
    try:
        make_activity(w3, escrow, templates, blocks=max(1, templates // 50), seed=11)
        logs = _rpc(w3, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest",
                                          "address": escrow}])  # fmt: skip
        emitter = Emitter.deploy(w3).address
        first = int(w3.eth.block_number) + 1
        cycle = itertools.islice(itertools.cycle(logs), per_tx)
        batch = [(list(map(bytes.fromhex, (t[2:] for t in log["topics"]))),
                  bytes.fromhex(log["data"][2:])) for log in cycle]  # fmt: skip
        emit = next(f for f in load_emitter_artifact()["abi"] if f.get("name") == "emitLogs")
        selector = function_abi_to_4byte_selector(emit)

        def calldata(logs: list[tuple[list[bytes], bytes]]) -> str:
            topics, data = [ts for ts, _ in logs], [d for _, d in logs]
            return "0x" + (selector + encode(["bytes32[][]", "bytes[]"], [topics, data])).hex()

        full = calldata(batch)
        sender = w3.eth.accounts[0]
        left = n_events
        while left > 0:
            # every transaction but the last (the remainder) sends the same calldata
            tx = {"from": sender, "to": emitter,
                  "data": full if left >= per_tx else calldata(batch[:left]),
                  "gas": hex(MANY_GAS_LIMIT - 1_000_000)}  # fmt: skip
            _mined(w3, _rpc(w3, "eth_sendTransaction", [tx]))
            left -= min(left, per_tx)
        return Chain(anvil, w3, emitter, first, int(w3.eth.block_number))
    except BaseException:
        anvil.stop()
        raise
