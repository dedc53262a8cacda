"""Per-chain defaults for RELAYER_CONFIRMATIONS (docs/CONTRACT.md §1), and the README's
table of known chains, which must be the code's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from function.chains import PRESETS, UNKNOWN_CONFIRMATIONS, preset
from function.config import load_settings
from minimal_env import MINIMAL

README = Path(__file__).resolve().parents[2] / "README.md"
BASE = {k: v for k, v in MINIMAL.items() if k != "CHAIN_ID"}


@pytest.mark.parametrize(
    ("chain_id", "confirmations", "source"),
    [
        (42161, 20, "chain preset"),
        (137, 16, "chain preset"),
        (31337, 0, "chain preset"),
        (999999, UNKNOWN_CONFIRMATIONS, "default"),
    ],
)
def test_unset_confirmations_come_from_the_chain(
    chain_id: int, confirmations: int, source: str
) -> None:
    s = load_settings({**BASE, "CHAIN_ID": str(chain_id)})
    assert (s.confirmations, s.confirmations_from) == (confirmations, source)
    assert s.head == "latest"  # the contract's default on every chain


def test_a_set_value_wins_over_the_preset_even_when_it_is_zero() -> None:
    s = load_settings({**BASE, "CHAIN_ID": "1", "RELAYER_CONFIRMATIONS": "0"})
    assert (s.confirmations, s.confirmations_from) == (0, "RELAYER_CONFIRMATIONS")


def test_every_preset_is_one_chain_with_a_reason() -> None:
    ids = [p.chain_id for p in PRESETS]
    assert len(ids) == len(set(ids))
    assert all(p.why and p.block_time_s > 0 and p.confirmations >= 0 for p in PRESETS)
    assert preset(11155111) is not None and preset(11155111).name == "Sepolia"  # type: ignore[union-attr]


def test_the_readme_table_is_the_code_table() -> None:
    text = README.read_text()
    section = text[text.index("### Known chains") :]
    rows = re.findall(r"^\| (.+?) \| (\d+) \| (\d+) \| ([\d.]+) s \| (.+) \|$", section, re.M)
    assert [(n, int(i), int(c), float(t), w) for n, i, c, t, w in rows] == [
        (p.name, p.chain_id, p.confirmations, p.block_time_s, p.why) for p in PRESETS
    ]


def test_status_names_the_chain_and_where_its_confirmations_came_from() -> None:
    from datetime import UTC, datetime

    from function.ops.status import relayer_status

    s = load_settings({**BASE, "CHAIN_ID": "42161"})
    entry = relayer_status(s, None, None, datetime(2026, 12, 1, tzinfo=UTC))
    assert (entry["chain_name"], entry["confirmations"], entry["confirmations_from"]) == (
        "Arbitrum One",
        20,
        "chain preset",
    )
