"""The one event the fakes emit, `Tick(uint256 indexed id, uint256 value)`, its ABI and the
settings of a relayer that relays it."""

from __future__ import annotations

from typing import Any

from eth_utils.crypto import keccak

from function.config import Settings
from function.core.abi import event_catalogue
from function.core.catalogue import EventCatalogue
from function.run.ports import Chain, Sink, State
from function.run.relay import Outcome, Relay

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ABI: list[dict[str, Any]] = [
    {
        "type": "event",
        "name": "Tick",
        "anonymous": False,
        "inputs": [
            {"name": "id", "type": "uint256", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    }
]
TOPIC0 = "0x" + keccak(text="Tick(uint256,uint256)").hex()
# The factory world (RELAYER_FACTORY): CONTRACT is a factory whose `Created` names each child,
# and the children emit the ticks.
CREATED_ABI: dict[str, Any] = {
    "type": "event",
    "name": "Created",
    "anonymous": False,
    "inputs": [
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "child", "type": "address", "indexed": False},
    ],
}
CREATED = "0x" + keccak(text="Created(address,address)").hex()
FACTORY_SETTING = f"{CONTRACT.lower()}:Created:child"


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def catalogue(factory: bool = False) -> EventCatalogue:
    return event_catalogue([*ABI, CREATED_ABI] if factory else ABI, (), "sim")


def settings(**overrides: Any) -> Settings:
    """A relayer of `Tick` on the fake chain (small batches: many commits per run)."""
    values: dict[str, Any] = dict(
        chain_id=CHAIN_ID,
        rpc_urls=("http://fake-rpc",),  # host_of: fake_chain.HOST
        contracts=(CONTRACT,),
        abi_uri="sim",
        pubsub_project="sim-project",
        topic="sim-topic",
        start_block=0,
        batch_size=12,
        checkpoint_interval=4,
        confirmations=0,
        relayer_id="sim",
        lease_s=10.0,
    )
    values.update(overrides)
    return Settings(**values)


def run_over(
    chain: Chain,
    state: State,
    sink: Sink,
    specs: EventCatalogue | None = None,
    **overrides: Any,
) -> Outcome:
    """One run of a relayer over fakes: `state` keeps the checkpoint and the records."""
    relay = Relay(
        settings=settings(**overrides),
        specs=specs or catalogue(),
        chain=chain,
        state=state,
        records=state,  # type: ignore[arg-type]  # the fakes' state is both ports
        sink=sink,
    )
    return relay.run()
