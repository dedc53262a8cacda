"""The fewest variables a relayer starts with (docs/CONTRACT.md §1's required ones), for
tests that stop at the configuration: each overrides what it is about."""

from __future__ import annotations

MINIMAL: dict[str, str] = {
    "CHAIN_ID": "31337",
    "RPC_URL": "http://127.0.0.1:8545",
    "CONTRACT_ADDRESS": "0x" + "11" * 20,
    "ABI_URI": "abi.json",
    "PUBSUB_PROJECT_ID": "demo-project",
    "PUBSUB_TOPIC": "events",
    "START_BLOCK": "0",
}
