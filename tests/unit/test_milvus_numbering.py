"""How Milvus replicas number their writes (no Milvus needed): numbers in different slots never
meet, one replica's only grow, and the stores of one Milvus Lite file share one counter."""

from __future__ import annotations

from typing import Any, cast

import pytest

from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.numbering import STRIDE, Numbering, ReplicaRow

pytestmark = pytest.mark.unit


def test_two_slots_number_apart_from_any_counter_and_past_it() -> None:
    target = MilvusTarget(uri="http://milvus:19530", collection="s")
    a, b = Numbering(cast(Any, None), target), Numbering(cast(Any, None), target)
    a.slot, b.slot = 3, 5
    given: list[int] = []
    last = {3: 0, 5: 0}
    for counter in (0, 1, 63, 64, 200, 1000):  # as both read the shared counter at once
        ours = a.numbers(max(counter, last[3]), 3)
        theirs = b.numbers(max(counter, last[5]), 2)
        assert min(ours + theirs) > counter  # a write that saw the counter comes after it
        assert all(n % STRIDE == 3 for n in ours)
        assert all(n % STRIDE == 5 for n in theirs)
        last[3], last[5] = ours[-1], theirs[-1]
        given += ours + theirs
    # No compare-and-set: the same counter read by both gives them different numbers.
    assert len(given) == len(set(given))


def test_the_stores_of_one_lite_file_share_a_counter(tmp_path: Any) -> None:
    target = MilvusTarget(uri=str(tmp_path / "lite.db"), collection="s")
    a, b = Numbering(cast(Any, None), target), Numbering(cast(Any, None), target)
    try:
        assert (a.slot, b.slot) == (0, 1)
        assert a.numbers(0, 2) == [1, 2]
        assert b.numbers(0, 1) == [3]  # read the same counter, numbered after a's
        assert a.numbers(10, 1) == [11]
    finally:
        a.release()
        b.release()
    fresh = Numbering(cast(Any, None), target)
    assert fresh.numbers(0, 1) == [1]  # the counter is Milvus's once no store is open
    fresh.release()


def test_a_replica_row_reads_back_as_written() -> None:
    row = ReplicaRow(7, 7 * STRIDE + 7, ((64, 135),), "s_slot_claim_7_x", 1700000000.5)
    assert ReplicaRow.parse("replica/7", row.meta_value()) == row
    assert row.stale(now=1700000000.5 + 61)
    assert not row.stale(now=1700000000.5 + 59)
