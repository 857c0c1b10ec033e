"""The cheap check the service runs before starting: is there a usable ONNX export?"""

from __future__ import annotations

import json
from pathlib import Path

from indexer.onnx_embedding import EXPORT_FILE, export_problem

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def fake_export(directory: Path, model: str = MODEL, files: tuple[str, ...] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXPORT_FILE).write_text(json.dumps({"model": model}), encoding="utf-8")
    for name in files:
        (directory / name).write_bytes(b"")
    return directory


def test_a_complete_export_of_the_model_passes(tmp_path: Path) -> None:
    directory = fake_export(tmp_path, files=("model.onnx", "model-int8.onnx", "tokenizer.json"))
    assert export_problem(MODEL, directory) is None
    assert export_problem(MODEL, directory, "int8") is None


def test_each_way_an_export_can_be_unusable_is_named(tmp_path: Path) -> None:
    assert export_problem(MODEL, tmp_path / "none") == (
        f"no ONNX export of {MODEL!r} in {tmp_path / 'none'}"
    )
    other = fake_export(tmp_path / "other", model="some/other-model")
    assert export_problem(MODEL, other) == (
        f"{other} holds an ONNX export of 'some/other-model', not of {MODEL!r}"
    )
    partial = fake_export(tmp_path / "partial", files=("model.onnx",))
    assert export_problem(MODEL, partial) == f"the ONNX export in {partial} lacks tokenizer.json"
    assert "lacks model-int8.onnx" in str(export_problem(MODEL, partial, "int8"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / EXPORT_FILE).write_text("{not json", encoding="utf-8")
    assert str(export_problem(MODEL, broken)).startswith(
        f"the ONNX export in {broken} is unreadable"
    )
