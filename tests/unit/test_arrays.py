from __future__ import annotations

import numpy as np

from indexer.stores.faiss.arrays import AppendOnlyArray


def test_a_head_taken_earlier_never_changes_however_much_is_appended() -> None:
    array: AppendOnlyArray[np.int64] = AppendOnlyArray(np.int64)
    array.extend([1, 2, 3])
    early = array.head(3)
    for start in range(4, 1000, 7):  # many reallocations
        array.extend(np.arange(start, start + 7))
    assert early.tolist() == [1, 2, 3]
    assert len(array) == 3 + 7 * len(range(4, 1000, 7))
    assert array.head(5).tolist() == [1, 2, 3, 4, 5]


def test_rows_of_vectors_append_and_keep_their_shape() -> None:
    vectors: AppendOnlyArray[np.float32] = AppendOnlyArray(np.float32, (4,))
    vectors.extend(np.ones((3, 4), dtype=np.float32))
    first = vectors.head(3)
    vectors.extend(np.zeros((40, 4), dtype=np.float32))
    assert first.shape == (3, 4)
    assert first.sum() == 12
    assert vectors.head().shape == (43, 4)
    assert vectors.head().dtype == np.float32


def test_of_copies_an_existing_array() -> None:
    source = np.arange(20, dtype=np.int64)
    array = AppendOnlyArray.of(source)
    source[0] = 99
    assert array.head(2).tolist() == [0, 1]
    assert len(array) == 20
