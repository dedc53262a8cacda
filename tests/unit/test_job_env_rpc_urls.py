"""`relayer job-env` never writes an RPC URL, whatever plain variable of the job holds it:
RPC_URL, RPC_WS_URL, or a RELAYER_CONFIG entry's RPC_URL_ENV (a name of its own); it names
each in a comment with how to read it, as it does for secrets."""

from __future__ import annotations

from typing import Any

from dotenv import dotenv_values

from function.ops.cli_env import job_env

KEY = "SECRETKEY123"


def described(env: list[dict[str, Any]]) -> dict[str, Any]:
    containers = [{"env": env}]
    return {
        "metadata": {"labels": {"cloud.googleapis.com/location": "europe-west1"}},
        "spec": {"template": {"spec": {"template": {"spec": {"containers": containers}}}}},
    }


JOB = described(
    [
        {"name": "CHAIN_ID", "value": "1"},
        {"name": "ABI_URI", "value": "gs://abis/escrow.json"},
        {"name": "RPC_URL", "value": f"https://a.example/v2/{KEY},https://b.example/{KEY}"},
        {"name": "RPC_WS_URL", "value": f"wss://a.example/ws/{KEY}"},
        {"name": "VAULT_NODE", "value": f"https://vault.example/{KEY}"},  # an RPC_URL_ENV
        {"name": "RELAYER_CONFIG", "value": "gs://abis/relayers.yaml"},
    ]
)


def test_no_rpc_url_is_written_and_each_is_named_with_how_to_read_it(tmp_path: Any) -> None:
    found = job_env(JOB, "relayer")
    text = found.as_env_file("relayer")
    assert KEY not in text, text
    assert found.withheld == ("RPC_URL", "RPC_WS_URL", "VAULT_NODE")
    for name in found.withheld:
        assert f"# {name} is a plain variable of the job holding an RPC URL" in text
        assert f'select(.name == "{name}")' in text
    assert "gcloud run jobs describe relayer --region=europe-west1" in text
    written = tmp_path / "job.env"
    written.write_text(text)
    assert dotenv_values(written) == {
        "ABI_URI": "gs://abis/escrow.json",
        "CHAIN_ID": "1",
        "RELAYER_CONFIG": "gs://abis/relayers.yaml",
    }


def test_the_json_answer_leaves_them_out_too() -> None:
    found = job_env(JOB, "relayer")
    assert KEY not in str(found.values)
    assert found.values["CHAIN_ID"] == "1"
