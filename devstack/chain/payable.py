"""A payable contract that logs what it is paid, written in raw EVM bytecode: the tests of
RELAYER_INCLUDE=transaction need a log whose transaction carries value, and one made by a
contract creation (`to` is null), which neither test contract makes (their functions are
not payable, their constructors emit nothing), and solc cannot run here.

The code is `Paid(address indexed payer, uint256 amount)` with the caller and the call's value,
then STOP. Run as a contract's code it logs every payment; run as init code it logs the
payment of the creation from the new address and leaves an empty contract behind.
"""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from devstack.chain.escrow import ScenarioError

PAID_SIGNATURE = "Paid(address,uint256)"
PAID_TOPIC0 = "0x" + keccak(text=PAID_SIGNATURE).hex()
PAID_ABI: list[dict[str, Any]] = [
    {
        "type": "event",
        "name": "Paid",
        "anonymous": False,
        "inputs": [
            {"name": "payer", "type": "address", "indexed": True},
            {"name": "amount", "type": "uint256", "indexed": False},
        ],
    }
]
# CALLVALUE PUSH0 MSTORE  CALLER PUSH32 topic0  PUSH1 32 PUSH0 LOG2  STOP
CODE = "0x345f5233" + "7f" + PAID_TOPIC0[2:] + "60205fa200"


def install(w3: Web3, address: str) -> ChecksumAddress:
    """Put the code at `address` (anvil_setCode): a payable logger, no deployment needed."""
    answer = w3.provider.make_request("anvil_setCode", [address, CODE])  # type: ignore[arg-type]
    if "error" in answer:
        raise ScenarioError(f"anvil_setCode failed: {answer['error']}")
    return to_checksum_address(address)


def creation_address(sender: str, nonce: int) -> ChecksumAddress:
    """Where `sender`'s creation with `nonce` lands: keccak(rlp([sender, nonce]))[12:]."""
    if nonce == 0:
        encoded_nonce = b"\x80"
    elif nonce < 0x80:
        encoded_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        encoded_nonce = bytes([0x80 + len(raw)]) + raw
    body = b"\x94" + bytes.fromhex(sender[2:]) + encoded_nonce
    return to_checksum_address(keccak(bytes([0xC0 + len(body)]) + body)[12:])


def pay(w3: Web3, sender: str, to: str | None, value: int) -> str:
    """Send `value` wei to the logger (`to`), or create one with it (`to` None); the
    transaction hash, once mined (automine)."""
    tx: dict[str, Any] = {"from": sender, "value": value, "gas": 100_000}
    if to is None:
        tx["data"] = CODE
    else:
        tx["to"] = to
    tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1 or len(receipt["logs"]) != 1:
        raise ScenarioError(f"payment {tx_hash.to_0x_hex()} did not log as planned")
    return str(tx_hash.to_0x_hex())
