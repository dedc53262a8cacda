"""Reading a document from Cloud Storage: every library error becomes the relayer's own,
naming the setting and the fix, and a Storage outage gives up soon (audit item 16).

Through the real google-cloud-storage client: against the storage emulator, against a
closed port, and without any credentials.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devstack.stack.clients import upload_blob
from devstack.stack.processes import free_port
from devstack.stack.services import Stack
from function.adapters.storage import READ_DEADLINE_S, read_uri
from function.errors import AbiError, ConfigError, DeploymentError, RelayerError


def test_reads_an_object(stack: Stack) -> None:
    upload_blob(stack.storage.address, "docs", "a/b.json", b"[1]")
    assert read_uri("gs://docs/a/b.json", "ABI_URI") == b"[1]"


def test_a_missing_object_is_a_deployment_error(stack: Stack) -> None:
    with pytest.raises(AbiError) as raised:
        read_uri("gs://heldout-abis/escrow.json", "ABI_URI")
    assert str(raised.value) == (
        "ABI_URI gs://heldout-abis/escrow.json does not exist: upload it or fix ABI_URI"
    )
    assert raised.value.exit_code == 2


def test_an_unreachable_storage_gives_up_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(RelayerError) as raised:
        read_uri("gs://abis/escrow.json", "RELAYER_CONFIG", ConfigError)
    took = time.monotonic() - started
    assert not isinstance(raised.value, DeploymentError | ConfigError)  # transient: exit 1
    assert raised.value.exit_code == 1
    message = str(raised.value)
    assert message.startswith("RELAYER_CONFIG gs://abis/escrow.json could not be read from ")
    assert f"Cloud Storage within {READ_DEADLINE_S:g} s" in message
    assert took < READ_DEADLINE_S + 10, took


def test_no_credentials_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(DeploymentError) as raised:
        read_uri("gs://abis/escrow.json", "ABI_URI")
    message = str(raised.value)
    assert message.startswith("ABI_URI gs://abis/escrow.json cannot be read: no Google credentials")
    assert "/nonexistent/key.json" in message


@pytest.mark.parametrize("uri", ["gs://Bad Bucket!/abi.json", "gs://-abis/abi.json"])
def test_an_invalid_bucket_name_is_a_setting_error(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AbiError) as raised:
        read_uri(uri, "ABI_URI")
    assert str(raised.value).startswith(f"ABI_URI {uri} names an invalid bucket: ")


def test_a_local_path_is_shown_whole(tmp_path: Path) -> None:
    missing = tmp_path / "abis" / "escrow.json"
    with pytest.raises(AbiError, match=f"ABI_URI {missing} cannot be read: No such file"):
        read_uri(str(missing), "ABI_URI")
