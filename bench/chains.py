"""The two chains the benchmark reads: one busy with escrow events, one long and empty.

Two anvils, because anvil slows down as its state grows: after 20,000 events every block
costs ~60 ms to mine, so 100,000 empty blocks go on a second, fresh chain (cancun, bare
`--prune-history`: ~2.5 s for `anvil_mine 100000`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3
from web3.types import RPCEndpoint

from devstack.chain.escrow import ExpectedEvent, deploy_escrow, make_activity
from devstack.stack.services import Anvil, start_anvil


@dataclass
class Chain:
    """An anvil with a deployed escrow; `first_block..head` is what the bench reads."""

    anvil: Anvil
    w3: Web3
    contract: str
    first_block: int  # first block after the deployment
    head: int
    expected: list[ExpectedEvent] = field(default_factory=list)

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    @property
    def blocks(self) -> int:
        return self.head - self.first_block + 1

    def stop(self) -> None:
        self.anvil.stop()


def _deployed() -> tuple[Anvil, Web3, str, int]:
    anvil = start_anvil(prune_history=0)
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


def empty_chain(n_blocks: int) -> Chain:
    """A fresh anvil with an escrow and then `n_blocks` empty blocks."""
    anvil, w3, contract, first = _deployed()
    try:
        reply = w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(n_blocks)])
        if "error" in reply:
            raise RuntimeError(f"anvil_mine failed: {reply['error']}")
        return Chain(anvil, w3, contract, first, int(w3.eth.block_number))
    except BaseException:
        anvil.stop()
        raise
