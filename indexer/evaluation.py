"""Measure relevance on a BEIR-layout collection: nDCG@10, Recall@100, MRR@10, queries/s.

Scoring is at document level: a document's rank is that of its best passage, which is what
``group_by_document`` returns. Metrics come from trec_eval (pytrec-eval-terrier), the
implementation BEIR reports with; it comes with the ``eval`` extra (it pulls in scipy, which
the serving image leaves out), so it is imported only when an evaluation runs.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from indexer.progress import progress as progress_bar
from indexer.search import Mode, Query, Searcher

DOCUMENT_DEPTH = 100


class MissingEvalExtraError(RuntimeError):
    """pytrec-eval-terrier, which computes the measures, is not installed."""


def trec_eval() -> ModuleType:
    """pytrec_eval, or an error saying how to install it, in one sentence."""
    try:
        import pytrec_eval
    except ImportError:
        raise MissingEvalExtraError(
            "the evaluation needs pytrec-eval-terrier, which is not installed here: install "
            "the eval extra (pip install 'semantic-search[eval]'; make install includes it)"
        ) from None
    return pytrec_eval


@dataclass(frozen=True, slots=True)
class Collection:
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class ModeResult:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries_per_second: float
    queries: int


def load_collection(directory: Path, split: str = "test") -> Collection:
    """Queries that have relevance judgements in ``qrels/<split>.tsv``, and those judgements."""
    qrels: dict[str, dict[str, int]] = {}
    with (directory / "qrels" / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries: dict[str, str] = {}
    with (directory / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if str(record["_id"]) in qrels:
                    queries[str(record["_id"])] = record["text"]
    return Collection(queries=queries, qrels={q: qrels[q] for q in queries})


def evaluate(
    searcher: Searcher, collection: Collection, modes: Sequence[Mode], *, progress: bool = False
) -> list[ModeResult]:
    return [_evaluate_mode(searcher, collection, mode, progress) for mode in modes]


def _evaluate_mode(
    searcher: Searcher, collection: Collection, mode: Mode, progress: bool
) -> ModeResult:
    run: dict[str, dict[str, float]] = {}
    seconds: list[float] = []
    items = progress_bar(
        collection.queries.items(), desc=f"eval {mode}", unit="query", enabled=progress
    )
    for query_id, text in items:
        started = time.perf_counter()
        hits = searcher.search(Query(text, mode=mode, k=DOCUMENT_DEPTH, group_by_document=True))
        seconds.append(time.perf_counter() - started)
        # Scores from ranks: trec_eval sorts by score, and this keeps our order (ties included).
        run[query_id] = {
            hit.passage.doc_id: float(DOCUMENT_DEPTH - i) for i, hit in enumerate(hits)
        }
    top10 = {q: dict(list(docs.items())[:10]) for q, docs in run.items()}
    pytrec_eval = trec_eval()
    full = pytrec_eval.RelevanceEvaluator(collection.qrels, {"ndcg_cut.10", "recall.100"}).evaluate(
        run
    )
    cut = pytrec_eval.RelevanceEvaluator(collection.qrels, {"recip_rank"}).evaluate(top10)

    def mean(measures: dict[str, dict[str, float]], name: str) -> float:
        # A query with no results at all is missing from trec_eval's output: it scores 0.
        values = [measures.get(q, {}).get(name, 0.0) for q in collection.queries]
        return round(statistics.fmean(values), 4) if values else 0.0

    return ModeResult(
        mode=mode,
        ndcg_at_10=mean(full, "ndcg_cut_10"),
        recall_at_100=mean(full, "recall_100"),
        mrr_at_10=mean(cut, "recip_rank"),
        queries_per_second=len(seconds) / sum(seconds) if seconds else 0.0,
        queries=len(collection.queries),
    )


def format_table(results: Sequence[ModeResult]) -> str:
    header = f"{'mode':<10} {'nDCG@10':>8} {'Recall@100':>11} {'MRR@10':>8} {'queries/s':>10}"
    rows = [
        f"{r.mode:<10} {r.ndcg_at_10:>8.4f} {r.recall_at_100:>11.4f} {r.mrr_at_10:>8.4f} "
        f"{r.queries_per_second:>10.1f}"
        for r in results
    ]
    return "\n".join([header, *rows])


def as_json(results: Sequence[ModeResult], **context: object) -> str:
    return json.dumps({**context, "results": [asdict(r) for r in results]}, indent=2) + "\n"
