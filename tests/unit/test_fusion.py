from __future__ import annotations

import pytest

from indexer.fusion import FusionParams, Ranking, convex_combination, reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks_over_the_lists_a_row_is_in() -> None:
    fused = reciprocal_rank_fusion(
        [Ranking.of([7, 8], [0.9, 0.5]), Ranking.of([8, 9], [12.0, 3.0])], k=60
    ).as_dict()
    assert fused == pytest.approx({7: 1 / 61, 8: 1 / 62 + 1 / 61, 9: 1 / 62})


def test_convex_combination_normalises_each_list_then_weighs_them() -> None:
    semantic = Ranking.of([1, 2, 3], [0.8, 0.6, 0.4])
    keyword = Ranking.of([3, 1], [10.0, 5.0])
    fused = convex_combination([(0.7, semantic), (0.3, keyword)]).as_dict()
    assert fused == pytest.approx(
        {1: 0.7 * 1.0 + 0.3 * 0.0, 2: 0.7 * 0.5, 3: 0.7 * 0.0 + 0.3 * 1.0}
    )


def test_convex_combination_handles_empty_and_flat_lists() -> None:
    empty, single = Ranking.of([], []), Ranking.of([4], [2.0])
    assert convex_combination([(0.5, empty), (0.5, single)]).as_dict() == {4: 0.5}


@pytest.mark.parametrize("params", [FusionParams("rrf", rrf_k=10), FusionParams("convex")])
def test_fuse_dispatches_on_the_method(params: FusionParams) -> None:
    fused = params.fuse(Ranking.of([1, 2], [0.9, 0.1]), Ranking.of([2], [5.0])).as_dict()
    assert set(fused) == {1, 2}
    if params.method == "rrf":
        assert fused[2] == pytest.approx(1 / 12 + 1 / 11)
