"""The bench writes the measured code's bytecode before timing it, as the image does: what a
start would otherwise compile (PYTHONDONTWRITEBYTECODE) is compiled once, and code that does
not compile stops the bench instead of being timed failing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.measure import BenchError, compiled


def test_the_relayer_and_the_floor_get_their_bytecode(tmp_path: Path) -> None:
    (tmp_path / "function" / "core").mkdir(parents=True)
    (tmp_path / "bench").mkdir()
    sources = [tmp_path / "function" / "core" / "x.py", tmp_path / "bench" / "floor.py"]
    for source in sources:
        source.write_text("VALUE = 1\n")

    compiled(tmp_path)

    assert all(Path(importlib.util.cache_from_source(str(s))).exists() for s in sources)


def test_code_that_does_not_compile_stops_the_bench(tmp_path: Path) -> None:
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "broken.py").write_text("def (:\n")
    with pytest.raises(BenchError, match="does not compile"):
        compiled(tmp_path)
