"""Which rows of a document written twice at one moment (two replicas) are removed: every
complete copy but the newest, and never an incomplete one (a write may still be in flight)."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from indexer.stores.milvus.copies import older_copies

pytestmark = pytest.mark.unit


class Rows:
    """Rows as two collections would hold them, keys allocated in insertion order."""

    def __init__(self) -> None:
        self.keys = count(100)
        self.documents: list[dict[str, Any]] = []
        self.passages: list[dict[str, Any]] = []

    def write(
        self, doc_id: str, seq: int, *, parts: int = 1, passages: int = 2, pieces: int | None = None
    ) -> tuple[list[int], list[int]]:
        """A write's rows, passages first (as a put inserts them); ``pieces``: how many of
        the ``parts`` text pieces are in yet. The keys: (document rows, passage rows)."""
        passage_keys = []
        for chunk in range(passages):
            passage_keys.append(next(self.keys))
            self.passages.append(
                {"pk": passage_keys[-1], "doc_id": doc_id, "seq": seq, "chunk_id": chunk}
            )
        document_keys = []
        for part in range(parts if pieces is None else pieces):
            document_keys.append(next(self.keys))
            self.documents.append(
                {
                    "pk": document_keys[-1],
                    "doc_id": doc_id,
                    "seq": seq,
                    "part": part,
                    "parts": parts,
                }
            )
        return document_keys, passage_keys

    def older(self) -> tuple[list[int], list[int]]:
        return older_copies(self.documents, self.passages)


def test_a_document_with_one_copy_loses_nothing() -> None:
    rows = Rows()
    rows.write("a", 1, parts=3, passages=5)
    rows.write("b", 2)
    assert rows.older() == ([], [])


def test_the_copy_with_the_lower_number_is_removed_whole() -> None:
    rows = Rows()
    first = rows.write("a", 5, parts=2, passages=3)
    rows.write("other", 6)
    rows.write("a", 9, parts=1, passages=1)
    documents, passages = rows.older()
    assert (sorted(documents), sorted(passages)) == (sorted(first[0]), sorted(first[1]))


def test_two_copies_with_one_number_keep_the_one_inserted_last() -> None:
    rows = Rows()
    first = rows.write("a", 7, passages=2)
    rows.write("a", 7, passages=3)
    assert rows.older() == first


def test_the_newest_of_three_copies_is_kept() -> None:
    rows = Rows()
    one = rows.write("a", 3)
    two = rows.write("a", 4, parts=2)
    rows.write("a", 8)
    documents, passages = rows.older()
    assert sorted(documents) == sorted(one[0] + two[0])
    assert sorted(passages) == sorted(one[1] + two[1])


def test_an_incomplete_newer_copy_removes_nothing() -> None:
    """A write still inserting its text (1 of 2 pieces in) will delete the old rows itself;
    removing them now, or its own rows, could leave the document with no complete copy."""
    rows = Rows()
    rows.write("a", 5)
    rows.write("a", 9, parts=2, pieces=1)
    assert rows.older() == ([], [])


def test_an_incomplete_copy_is_left_even_when_two_complete_ones_are_resolved() -> None:
    rows = Rows()
    old = rows.write("a", 5)
    rows.write("a", 6)
    rows.write("a", 11, parts=3, pieces=2)  # in flight
    assert rows.older() == old


def test_an_abandoned_incomplete_copy_is_removed_and_the_complete_one_kept() -> None:
    """A write known to be over (its replica's row went stale) left 1 of 2 text pieces: no
    delete of its own is to come, so its rows go and the old copy stays."""
    rows = Rows()
    rows.write("a", 5)
    cut = rows.write("a", 9, parts=2, pieces=1)
    documents, passages = older_copies(rows.documents, rows.passages, lambda seq: seq == 9)
    assert (sorted(documents), sorted(passages)) == (sorted(cut[0]), sorted(cut[1]))


def test_an_abandoned_write_that_only_got_its_passages_in_loses_them() -> None:
    rows = Rows()
    rows.write("a", 5)
    cut = rows.write("a", 9, parts=1, pieces=0)  # killed between the two inserts
    rows.write("b", 9, parts=1, pieces=0)  # a document that had no copy before
    documents, passages = older_copies(rows.documents, rows.passages, lambda seq: seq == 9)
    assert documents == []
    of_b = [p["pk"] for p in rows.passages if p["doc_id"] == "b"]
    assert sorted(passages) == sorted(cut[1] + of_b)


def test_an_abandoned_write_that_completed_is_the_newest_copy_and_stays() -> None:
    """Killed between its insert and its delete: its copy is whole and the newest."""
    rows = Rows()
    old = rows.write("a", 5)
    rows.write("a", 9)
    assert older_copies(rows.documents, rows.passages, lambda seq: seq == 9) == old
