"""Review of issue 15: the status page is "what an on-call engineer opens first", tested "with
a fleet, a failed relayer". One relayer of RELAYER_CONFIG whose own RPC secret is missing
(RPC_URL_ENV names a variable that is not set: a secret not mounted, a typo) turns the whole
page into one JSON error line: no relayer is shown, healthy or not, and the page is not HTML.
(The job likewise runs none of the fleet: one entry's problem stops every relayer.)"""

from __future__ import annotations

import json
from pathlib import Path

from function.ops import app
from minimal_env import MINIMAL


def test_a_fleet_page_with_one_relayer_missing_its_secret_still_shows_the_others(
    tmp_path: Path,
) -> None:
    config = tmp_path / "relayers.json"
    config.write_text(
        json.dumps(
            {
                "relayers": [
                    {"RELAYER_ID": "good", "CONTRACT_ADDRESS": "0x" + "11" * 20},
                    {
                        "RELAYER_ID": "second",
                        "CONTRACT_ADDRESS": "0x" + "22" * 20,
                        "RPC_URL_ENV": "SECOND_RPC_URL",
                    },
                ]
            }
        )
    )
    env = {**MINIMAL, "RELAYER_CONFIG": str(config), "LOG_FORMAT": "text"}
    app.clear_cache()
    body, code, headers = app.status_http(env, "/")
    app.clear_cache()
    assert code == 503
    assert headers.get("Content-Type", "").startswith("text/html"), (
        f"{headers.get('Content-Type')}: {body!r}"
    )
    assert "good" in str(body) and "second" in str(body)
