"""The relevance floor CI holds us to: the evaluation command on CISI with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.utils.needs import shared
from tests.utils.paths import REPO
from tests.utils.processes import indexer_cli

pytestmark = pytest.mark.long

# nDCG@10 floors; docs/relevance.md has the measured values and what was tried.
FLOORS = {"hybrid": 0.44, "semantic": 0.41}


def test_cisi_relevance_stays_above_the_floors(onnx_dir: Path) -> None:
    cisi = shared("benchmarks/cisi")
    report = REPO / "test-artifacts" / "eval-cisi.json"
    result = indexer_cli(
        "eval",
        str(cisi),
        "--no-progress",
        "--json",
        str(report),
        "--onnx-dir",  # the default backend's export, made once per test session
        str(onnx_dir),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # the table, in the CI log
    ndcg = {r["mode"]: r["ndcg_at_10"] for r in json.loads(report.read_text())["results"]}
    assert set(ndcg) == {"semantic", "keyword", "hybrid"}
    for mode, floor in FLOORS.items():
        assert ndcg[mode] >= floor, f"{mode} nDCG@10 {ndcg[mode]} fell below {floor}"
    assert ndcg["hybrid"] > max(ndcg["semantic"], ndcg["keyword"])
