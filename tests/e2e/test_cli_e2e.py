from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from indexer.cli import app
from indexer.embedding import DEFAULT_MODEL
from indexer.stores.faiss_store import read_current_manifest
from tests.conftest import OPPOSITION_DOC, RUSSIA_DOC, SEEDS

runner = CliRunner()


def test_build_then_search_from_the_command_line(tmp_path: Path) -> None:
    out, onnx = tmp_path / "index", tmp_path / "onnx"
    paths = ["--out", str(out), "--onnx-dir", str(onnx)]
    built = runner.invoke(app, ["build", "--source", str(SEEDS), *paths, "--no-progress"])
    assert built.exit_code == 0, built.output
    # The default backend runs the model with ONNX Runtime; the first build makes the export.
    lines = built.output.splitlines()
    assert lines[0].startswith("exporting the model for ONNX Runtime (once): no ONNX export")
    assert {"export.json", "model.onnx", "tokenizer.json"} <= {p.name for p in onnx.iterdir()}
    assert lines[-1].startswith("indexed 2 documents into ")
    assert "passages/s" in built.output
    manifest = read_current_manifest(out)
    assert (manifest.model.name, manifest.model.dimension) == (DEFAULT_MODEL, 384)

    again = runner.invoke(app, ["build", "--source", str(SEEDS), *paths, "--if-stale"])
    assert again.output == f"index at {out} is up to date (2 documents)\n"

    found = runner.invoke(app, ["search", *paths, "-k", "2", "Russian military presence"])
    assert found.exit_code == 0, found.output
    first = found.output.splitlines()[0]
    assert re.match(r"1\. score \d\.\d{4}  ", first), first
    assert RUSSIA_DOC in first
    start, end = map(int, first.split("[")[1].split("]")[0].split(":"))
    text = (SEEDS / RUSSIA_DOC).read_bytes().decode("utf-8")[start:end]
    assert " ".join(text.split())[:60] in " ".join(found.output.split())

    only_the_other = ["--filter", f'{{"doc_id": {{"in": ["{OPPOSITION_DOC}"]}}}}']
    filtered = runner.invoke(app, ["search", *paths, *only_the_other, "Russian military presence"])
    assert filtered.exit_code == 0, filtered.output
    assert RUSSIA_DOC not in filtered.output
    assert OPPOSITION_DOC in filtered.output.splitlines()[0]
    bad = runner.invoke(app, ["search", *paths, "--filter", '{"year": {"gtee": 1}}', "x"])
    assert bad.exit_code == 1
    assert "unknown operator 'gtee'" in bad.output
