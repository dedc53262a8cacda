"""The local stack works for real: each fixture's service answers the real clients, and stopping
leaves no process and no bound port behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as storage
import pytest
import requests
from google.cloud import firestore

from devstack.stack import clients, processes, services
from devstack.stack.clients import PubSubTopic
from devstack.stack.services import Anvil, FirestoreEmulator, Stack

PROJECT = "relayer-test"  # the project the conftest fixtures use


def _rpc(url: str, method: str, params: list[str] | None = None) -> object:
    reply = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=10
    )
    return reply.json()["result"]


def _group_members(pgid: int) -> dict[int, str]:
    """pid -> command line of every live (non-zombie) process in a process group."""
    members = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                members[int(entry.name)] = cmdline
    return members


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_with(text: str) -> list[int]:
    """Live pids whose command line contains text: finds strays outside any group we know."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen there (SO_REUSEADDR: TIME_WAIT leftovers don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((processes.HOST, port))
        except OSError:
            return False
        return True


def test_pubsub_message_comes_back_with_key_and_attributes(pubsub_topic: PubSubTopic) -> None:
    publisher = pubsub_v1.PublisherClient(  # reads PUBSUB_EMULATOR_HOST, as the relayer does
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    sent = [
        publisher.publish(
            pubsub_topic.topic_path, f"event {i}".encode(), ordering_key="0xabc", event_id=f"id-{i}"
        ).result(timeout=30)
        for i in range(3)
    ]

    pulled = pubsub_topic.pull_all(idle_s=0.3)

    assert [(m.data, m.attributes, m.ordering_key, m.message_id) for m in pulled] == [
        (f"event {i}".encode(), {"event_id": f"id-{i}"}, "0xabc", sent[i]) for i in range(3)
    ]
    assert pubsub_topic.pull_all(idle_s=0.1) == []  # acked: nothing comes back


def test_firestore_doc_is_gone_after_reset(firestore_reset: FirestoreEmulator) -> None:
    client = firestore.Client(project=PROJECT)  # reads FIRESTORE_EMULATOR_HOST
    doc = client.collection("checkpoints").document("chain-31337")
    doc.set({"block": 42})
    assert doc.get().to_dict() == {"block": 42}

    clients.reset_firestore(firestore_reset.address, PROJECT)

    assert not doc.get().exists


def test_blob_uploaded_by_helper_downloads_with_env_client(stack: Stack) -> None:
    abi = b'[{"type":"event","name":"Funded"}]'
    clients.upload_blob(stack.storage.env_value, "relayer-abi", "escrow/abi.json", abi)
    clients.upload_blob(stack.storage.address, "relayer-abi", "escrow/abi.json", abi + b" ")

    client = storage.Client()  # reads STORAGE_EMULATOR_HOST

    assert client.bucket("relayer-abi").blob("escrow/abi.json").download_as_bytes() == abi + b" "


def test_anvil_fixture_answers_default_chain_id(anvil: Anvil) -> None:
    assert _rpc(anvil.rpc_url, "eth_chainId") == "0x7a69"


def test_anvil_answers_configured_chain_id_and_stops() -> None:
    chain = services.start_anvil(chain_id=1337, prune_history=0, block_time=None)
    try:
        assert _rpc(chain.rpc_url, "eth_chainId") == hex(1337)
    finally:
        chain.stop()

    assert _group_members(chain.pid) == {}
    assert _port_is_free(chain.port)


def test_anvil_full_history_spills_to_scratch_not_home() -> None:
    home_tmp = Path.home() / ".foundry" / "anvil" / "tmp"
    before = set(home_tmp.iterdir()) if home_tmp.exists() else set()
    chain = services.start_anvil(prune_history=None)
    try:
        _rpc(chain.rpc_url, "anvil_mine", ["0x300"])  # past the ~128 states anvil keeps in memory
        spilled = [p for p in (chain.scratch / "states").rglob("*") if p.is_file()]
        after = set(home_tmp.iterdir()) if home_tmp.exists() else set()
    finally:
        chain.stop()

    assert spilled
    assert after == before
    assert not chain.scratch.exists()


def test_start_error_carries_the_service_output() -> None:
    with pytest.raises(processes.ServiceStartError, match="no-such-flag"):
        services.start_anvil(extra_args=["--no-such-flag"])


def test_storage_emulator_moves_on_when_its_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind((processes.HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, processes.free_port()])
        monkeypatch.setattr(services, "free_port", lambda: next(ports))

        with services.start_storage_emulator() as gcs:
            assert gcs.port != taken
            assert requests.get(f"{gcs.env_value}/", timeout=5).status_code == 200

    assert _processes_with(f"--port {taken} ") == []  # the first try did not linger


def test_stopped_stack_leaves_no_process_and_no_port() -> None:
    with Stack.start(PROJECT) as own:
        members = {pid: cmd for s in own.services for pid, cmd in _group_members(s.pid).items()}
        ports = [s.port for s in own.services]
        assert sum("java" in cmd for cmd in members.values()) == 2  # the JVMs we must not orphan
        assert not any(_port_is_free(port) for port in ports)

    assert not [pid for pid in members if _alive(pid)]
    assert not [p for port in ports for p in _processes_with(f"port={port}")]  # no orphan JVM
    assert all(_port_is_free(port) for port in ports)
