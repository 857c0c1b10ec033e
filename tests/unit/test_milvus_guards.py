"""Guarded puts in one Milvus group commit: checked against the store and the puts before."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.filters import parse_filter
from indexer.stores.base import OutOfScopeError, StoredDocument
from indexer.stores.milvus.writes import PendingPut, check_guards
from indexer.types import Document, IndexedDocument, Passage

pytestmark = pytest.mark.unit

TENANT_A = parse_filter({"tenant": "a"})


def item(doc_id: str, tenant: str) -> IndexedDocument:
    document = Document(doc_id, "T", "text", {"tenant": tenant})
    return IndexedDocument(document, (Passage(doc_id, 0, 0, 4, "text"),), np.ones((1, 4)))


def test_a_guarded_put_sees_the_store_and_the_puts_before_it_in_its_group() -> None:
    stored = {"a-own": item("a-own", "a"), "b-own": item("b-own", "b")}

    def get(doc_id: str) -> StoredDocument | None:
        found = stored.get(doc_id)
        return None if found is None else StoredDocument(found.document, found.passages)

    group = [
        PendingPut((item("new", "b"),)),  # unguarded: creates "new" as b's
        PendingPut((item("new", "a"),), guard=TENANT_A),  # would replace it: refused
        PendingPut((item("a-own", "a"), item("fresh", "a")), guard=TENANT_A),  # its own: fine
        PendingPut((item("fresh2", "a"), item("b-own", "a")), guard=TENANT_A),  # b's: refused
    ]
    check_guards(group, get)
    outcomes = [pending.outcome for pending in group]
    assert outcomes[0] is None
    assert isinstance(outcomes[1], OutOfScopeError)
    assert "'new' is taken" in str(outcomes[1])
    assert outcomes[2] is None
    assert isinstance(outcomes[3], OutOfScopeError)
    assert "'b-own' is taken" in str(outcomes[3])


def test_a_group_without_guards_is_left_alone() -> None:
    def get(doc_id: str) -> StoredDocument | None:
        raise AssertionError("no guard: nothing to read")

    group = [PendingPut((item("x", "b"),)), PendingPut((item("x", "a"),))]
    check_guards(group, get)
    assert [p.outcome for p in group] == [None, None]
