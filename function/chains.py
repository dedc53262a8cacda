"""Known chains: what RELAYER_CONFIRMATIONS defaults to on each, and why (pure).

A relayer stops `RELAYER_CONFIRMATIONS` blocks behind the head so that a reorganisation
rarely reaches what it published (one that does is retracted, docs/CONTRACT.md §3). How deep
reorganisations go depends on the chain's consensus, so the default does too; an unknown chain
keeps 12. `RELAYER_HEAD=safe` or `finalized` follows the node's own finality instead, on the
chains whose nodes serve those tags. Block times are shown in status, to read a lag in blocks
as time. The README's table of known chains is this table (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_CONFIRMATIONS = 12


@dataclass(frozen=True, slots=True)
class ChainPreset:
    chain_id: int
    name: str
    confirmations: int
    block_time_s: float
    why: str


_ETHEREUM = (
    "post-merge reorganisations deeper than one or two blocks are rare; 12 blocks (~2.4 min) "
    "is the long-standing default of exchanges; finalized (~13 min) with RELAYER_HEAD=finalized"
)
_OP_STACK = (
    "OP Stack: the sequencer's unsafe blocks are replaced only if their batch fails to reach "
    "L1; 10 blocks (~20 s); RELAYER_HEAD=safe waits for the batch on L1"
)
_ARBITRUM = (
    "Arbitrum: the sequencer's order is final unless the sequencer itself misbehaves; "
    "20 blocks (~5 s)"
)
_POLYGON = (
    "Polygon PoS: milestones finalise blocks in 2-5 s since Heimdall v2; Polygon's docs count "
    "16 blocks as final"
)
_BNB = "BNB Smart Chain: fast finality (BEP-126) finalises in about 2 blocks; 15 (~11 s)"
_AVALANCHE = (
    "Avalanche: Snowman accepts a block only once it is final, so it is never reorganised; "
    "1 block of margin for a node that lags"
)
_GNOSIS = "Gnosis: Ethereum's consensus with 5 s slots; 12 blocks (~1 min)"
_ROLLUP = "a rollup whose sequencer orders blocks; 10 blocks of margin"
_DEV = "a local development chain (anvil, Hardhat, Ganache): nobody reorganises it but you"

PRESETS: tuple[ChainPreset, ...] = (
    ChainPreset(1, "Ethereum", 12, 12.0, _ETHEREUM),
    ChainPreset(11155111, "Sepolia", 12, 12.0, _ETHEREUM),
    ChainPreset(17000, "Holesky", 12, 12.0, _ETHEREUM),
    ChainPreset(560048, "Hoodi", 12, 12.0, _ETHEREUM),
    ChainPreset(10, "OP Mainnet", 10, 2.0, _OP_STACK),
    ChainPreset(11155420, "OP Sepolia", 10, 2.0, _OP_STACK),
    ChainPreset(8453, "Base", 10, 2.0, _OP_STACK),
    ChainPreset(84532, "Base Sepolia", 10, 2.0, _OP_STACK),
    ChainPreset(81457, "Blast", 10, 2.0, _OP_STACK),
    ChainPreset(42220, "Celo", 10, 1.0, _OP_STACK),
    ChainPreset(42161, "Arbitrum One", 20, 0.25, _ARBITRUM),
    ChainPreset(42170, "Arbitrum Nova", 20, 0.25, _ARBITRUM),
    ChainPreset(421614, "Arbitrum Sepolia", 20, 0.25, _ARBITRUM),
    ChainPreset(137, "Polygon PoS", 16, 2.0, _POLYGON),
    ChainPreset(80002, "Polygon Amoy", 16, 2.0, _POLYGON),
    ChainPreset(56, "BNB Smart Chain", 15, 0.75, _BNB),
    ChainPreset(97, "BNB Smart Chain testnet", 15, 0.75, _BNB),
    ChainPreset(43114, "Avalanche C-Chain", 1, 2.0, _AVALANCHE),
    ChainPreset(43113, "Avalanche Fuji", 1, 2.0, _AVALANCHE),
    ChainPreset(100, "Gnosis", 12, 5.0, _GNOSIS),
    ChainPreset(10200, "Gnosis Chiado", 12, 5.0, _GNOSIS),
    ChainPreset(59144, "Linea", 10, 2.0, _ROLLUP),
    ChainPreset(534352, "Scroll", 10, 3.0, _ROLLUP),
    ChainPreset(324, "zkSync Era", 10, 1.0, _ROLLUP),
    ChainPreset(31337, "Anvil / Hardhat", 0, 1.0, _DEV),
    ChainPreset(1337, "Ganache / geth --dev", 0, 1.0, _DEV),
)

_BY_ID = {p.chain_id: p for p in PRESETS}


def preset(chain_id: int) -> ChainPreset | None:
    """The known chain with this id, if it is one."""
    return _BY_ID.get(chain_id)
