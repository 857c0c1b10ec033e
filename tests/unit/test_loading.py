from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.loading import document_checksum, load_corpus
from indexer.types import Document
from tests.utils import needs
from tests.utils.paths import SEEDS
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC, write_articles


def test_seed_articles_load_with_file_names_as_ids_and_first_lines_as_titles() -> None:
    corpus = load_corpus(SEEDS)
    assert corpus.skipped == []
    assert [d.doc_id for d in corpus.documents] == [OPPOSITION_DOC, RUSSIA_DOC]
    russia = corpus.documents[1]
    assert russia.title.startswith("Mike Pompeo Calls Russia an 'Undesired Foreign Presence'")
    assert russia.text == (SEEDS / RUSSIA_DOC).read_bytes().decode("utf-8")


def test_text_is_kept_byte_exact_including_crlf(tmp_path: Path) -> None:
    raw = "Title\r\n\r\nBody “quoted”.\r\n".encode()
    (tmp_path / "a.txt").write_bytes(raw)
    [document] = load_corpus(tmp_path).documents
    assert document.text == raw.decode("utf-8")
    assert document.title == "Title"


def test_bad_files_are_reported_by_name_and_skipped(tmp_path: Path) -> None:
    write_articles(
        tmp_path, {"good.txt": "Good\n\nText.", "blank.txt": " \n\n ", "notes.md": "# x"}
    )
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / ".hidden.txt").write_text("ignored")
    corpus = load_corpus(tmp_path)
    assert [d.doc_id for d in corpus.documents] == ["good.txt"]
    reasons = {Path(s.where).name: s.reason for s in corpus.skipped}
    assert reasons["blank.txt"] == "empty file"
    assert reasons["latin1.txt"].startswith("not UTF-8")
    assert reasons["notes.md"].startswith("unsupported file type")
    assert ".hidden.txt" not in reasons


def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    write_articles(tmp_path, {"ok.txt": "Fine."})
    (tmp_path / "dir.txt").mkdir()  # a directory named like an article is skipped silently
    broken = tmp_path / "broken.txt"
    broken.symlink_to(tmp_path / "missing-target.txt")
    corpus = load_corpus(tmp_path)
    assert [d.doc_id for d in corpus.documents] == ["ok.txt"]
    assert [Path(s.where).name for s in corpus.skipped] == ["broken.txt"]
    assert corpus.skipped[0].reason.startswith("unreadable")


def test_beir_jsonl_records_load_and_bad_lines_are_reported(tmp_path: Path) -> None:
    lines = [
        json.dumps({"_id": "1", "title": "First", "text": "Alpha text."}),
        "{not json",
        json.dumps({"_id": "2", "title": "", "text": "Untitled text."}),
        json.dumps({"_id": "3", "title": "No text"}),
        json.dumps({"_id": "1", "title": "Again", "text": "Duplicate id."}),
        json.dumps(["not", "an", "object"]),
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_corpus(tmp_path / "corpus.jsonl")
    assert [(d.doc_id, d.title, d.text) for d in corpus.documents] == [
        ("1", "First", "Alpha text."),
        ("2", "2", "Untitled text."),
    ]
    reasons = [s.reason for s in corpus.skipped]
    assert reasons == [
        "invalid JSON (Expecting property name enclosed in double quotes)",
        "missing or empty 'text'",
        "duplicate document id",
        "record is not a JSON object",
    ]
    assert corpus.skipped[0].where.endswith("corpus.jsonl:2")


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_checksum_changes_with_title_or_text() -> None:
    from indexer.types import Document

    base = document_checksum(Document("a", "T", "x"))
    assert base == document_checksum(Document("other-id", "T", "x"))
    assert base != document_checksum(Document("a", "T2", "x"))
    assert base != document_checksum(Document("a", "T", "x "))


def test_seeds_are_the_shared_articles_byte_for_byte() -> None:
    shared = needs.shared("seeds")
    assert sorted(p.name for p in SEEDS.iterdir()) == sorted(p.name for p in shared.iterdir())
    for path in shared.iterdir():
        assert (SEEDS / path.name).read_bytes() == path.read_bytes()


def test_jsonl_records_may_carry_metadata_and_bad_metadata_is_reported(tmp_path: Path) -> None:
    records = [
        {"_id": "a", "title": "A", "text": "x", "metadata": {"section": "world", "year": 2019}},
        {"_id": "b", "title": "B", "text": "y", "metadata": {"nested": {"no": 1}}},
        {"_id": "c", "title": "C", "text": "z"},
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    corpus = load_corpus(path)
    assert [(d.doc_id, d.metadata) for d in corpus.documents] == [
        ("a", {"section": "world", "year": 2019}),
        ("c", {}),
    ]
    [skipped] = corpus.skipped
    assert skipped.where.endswith("corpus.jsonl:2")
    assert "metadata key 'nested'" in skipped.reason


def test_metadata_is_part_of_the_checksum_only_when_present() -> None:
    plain = Document("d", "T", "text")
    tagged = Document("d", "T", "text", {"section": "world"})
    assert document_checksum(plain) != document_checksum(tagged)
    assert document_checksum(plain) == document_checksum(Document("d", "T", "text", {}))
