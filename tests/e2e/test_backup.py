"""`relayer export` / `relayer import`: a relayer's state carried to another Firestore
project (a restore, or a move), against anvil and the emulators. What the import carries
must let the next run go on exactly where the exported one stopped: nothing again, nothing
skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore

from function.adapters.firestore import backup
from harness import (
    PROJECT,
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    run_cli,
    run_main,
    run_until_idle,
)

RESTORED = "relayer-restored"


def _docs(project: str, relayer_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    relayer = firestore.Client(project=project).collection("relayers").document(relayer_id)
    blocks = {s.id: s.to_dict() or {} for s in relayer.collection("blocks").stream()}
    return relayer.get().to_dict() or {}, blocks


def test_an_exported_relayer_goes_on_in_another_project_exactly_where_it_stopped(
    deployment: Deployment, tmp_path: Path
) -> None:
    before = deployment.make_activity(30, blocks=6, seed=31)
    env = deployment.env(RELAYER_CHECKPOINT_INTERVAL="2")
    run_until_idle(env)
    first = payloads(deployment.topic.pull_all())
    assert_exactly_once(first, before)
    file = tmp_path / "state.jsonl"

    exported = run_cli(env, "export", "--out", str(file), "--json")
    assert exported.code == 0, exported.stderr
    answer = json.loads(exported.stdout)
    doc, blocks = _docs(PROJECT, deployment.relayer_id)
    assert answer["blocks"] == len(blocks) > 0

    restored_env = {**env, "FIRESTORE_PROJECT_ID": RESTORED}
    assert run_cli(restored_env, "import", "--in", str(file)).code == 2  # no --yes
    imported = run_cli(restored_env, "import", "--in", str(file), "--yes")
    assert imported.code == 0, imported.stderr
    new_doc, new_blocks = _docs(RESTORED, deployment.relayer_id)
    assert new_blocks == blocks  # every record, bytes and timestamps included
    for key in ("next_block", "checkpoint_block_hash", "recent_blocks", "totals", "last_run"):
        assert new_doc[key] == doc[key], key
    assert new_doc["lease"]["owner"] is None
    assert new_doc["lease"]["fence"] > doc["lease"]["fence"]

    # The restored relayer: nothing again; then new events from its checkpoint on, once.
    again = run_main(restored_env)
    assert again.code == 0 and again.summary["outcome"] == "idle"  # from the checkpoint on
    after = deployment.make_activity(10, blocks=2, seed=32)
    run_until_idle(restored_env)
    assert_exactly_once(payloads(deployment.topic.pull_all()), after)
    assert relayer_doc(deployment.relayer_id)["next_block"] == doc["next_block"]  # untouched

    refused = run_cli(restored_env, "import", "--in", str(file), "--yes")
    assert refused.code == 2 and "already has state" in refused.stderr


def test_an_import_cut_short_holds_the_lease_and_is_resumed(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.make_activity(20, blocks=5, seed=33)
    env = deployment.env(RELAYER_CHECKPOINT_INTERVAL="1")
    run_until_idle(env)
    deployment.topic.pull_all()
    file = tmp_path / "state.jsonl"
    assert run_cli(env, "export", "--out", str(file)).code == 0
    project = "relayer-cut-short"
    client = firestore.Client(project=project)
    with file.open() as lines:
        relayer_id, doc, docs = backup.read_export(lines, str(file))

        def failing() -> Any:
            for n, item in enumerate(docs):
                if n == 2:
                    raise gexc.ServiceUnavailable("the database went away")
                yield item

        with pytest.raises(Exception, match="run the same import again"):
            backup.import_state(client, relayer_id, doc, failing(), "import-1")
    cut = client.collection("relayers").document(relayer_id).get().to_dict() or {}
    assert cut["lease"]["owner"] == "import-1"  # no run relays from a half-imported state
    restored_env = {**env, "FIRESTORE_PROJECT_ID": project}
    skipped = run_main(restored_env)
    assert skipped.code == 0 and skipped.summary["outcome"] == "skipped"

    resumed = run_cli(restored_env, "import", "--in", str(file), "--yes")
    assert resumed.code == 0, resumed.stderr
    assert _docs(project, relayer_id)[1] == _docs(PROJECT, relayer_id)[1]
    assert run_main(restored_env).summary["outcome"] == "idle"


def test_export_of_a_relayer_without_state_says_which_settings_to_check(
    deployment: Deployment, tmp_path: Path
) -> None:
    env = deployment.env(RELAYER_ID="nobody-here")
    done = run_cli(env, "export", "--out", str(tmp_path / "x.jsonl"))
    assert done.code == 2 and "has no state in this database" in done.stderr
