"""``python -m indexer``: build an index, search it, or evaluate relevance on a BEIR collection."""

from __future__ import annotations

import tempfile
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from indexer.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_ONNX_DIR,
    load_embedder,
    onnx_variant,
)
from indexer.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, ChunkingParams
from indexer.embedding import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, Embedder, ModelLoadError
from indexer.evaluation import as_json, evaluate, format_table, load_collection
from indexer.fusion import FusionParams
from indexer.index import (
    BuildError,
    BuildParams,
    IndexLoadError,
    SearchIndex,
    build_index,
    stale_reason,
)
from indexer.loading import Corpus, load_corpus
from indexer.search import DEFAULT_MODE, MODES, Query, Searcher, UnknownDocumentError

app = typer.Typer(help="Build, query and evaluate semantic search indexes.", no_args_is_help=True)

ModeChoice = StrEnum("ModeChoice", {m: m for m in MODES})  # type: ignore[misc]
FusionChoice = StrEnum("FusionChoice", {"rrf": "rrf", "convex": "convex"})

ModelOption = Annotated[
    str, typer.Option("--model", envvar="SEARCH_MODEL", help="Embedding model name or directory.")
]
IndexDirOption = Annotated[
    Path, typer.Option("--index", "--out", envvar="SEARCH_INDEX_DIR", help="Index directory.")
]
MaxTokensOption = Annotated[
    int, typer.Option(envvar="SEARCH_CHUNK_MAX_TOKENS", help="Passage size limit in model tokens.")
]
OverlapOption = Annotated[
    float,
    typer.Option(envvar="SEARCH_CHUNK_OVERLAP", help="Share of a window repeated in the next."),
]
TitlePrefixOption = Annotated[
    bool,
    typer.Option(
        envvar="SEARCH_TITLE_PREFIX", help="Embed and index passages with their title first."
    ),
]
IndexFactoryOption = Annotated[
    str,
    typer.Option(
        envvar="SEARCH_INDEX_FACTORY", help='FAISS index: "Flat", "HNSW32", "IVF1024,Flat".'
    ),
]
SearchParamsOption = Annotated[
    str,
    typer.Option(
        envvar="SEARCH_SEARCH_PARAMS",
        help='FAISS parameters, e.g. "nprobe=16" or "efConstruction=200,efSearch=128".',
    ),
]
FusionOption = Annotated[
    FusionChoice, typer.Option(envvar="SEARCH_FUSION", help="How hybrid mode merges the rankings.")
]
RrfKOption = Annotated[int, typer.Option(envvar="SEARCH_RRF_K", help="RRF damping constant.")]
SemanticWeightOption = Annotated[
    float, typer.Option(envvar="SEARCH_SEMANTIC_WEIGHT", help="Convex fusion: semantic weight.")
]
ProgressOption = Annotated[bool, typer.Option(help="Show progress bars.")]
BackendChoice = StrEnum("BackendChoice", {b: b for b in BACKENDS})  # type: ignore[misc]
BackendOption = Annotated[
    BackendChoice, typer.Option(envvar="SEARCH_BACKEND", help="How the model runs.")
]
OnnxDirOption = Annotated[
    Path,
    typer.Option(envvar="SEARCH_ONNX_DIR", help="The ONNX export; made here if it is missing."),
]

_DEFAULT_FUSION = FusionParams()
_DEFAULT_MODE_CHOICE = ModeChoice(DEFAULT_MODE)
_DEFAULT_FUSION_CHOICE = FusionChoice(_DEFAULT_FUSION.method)
_DEFAULT_BACKEND = BackendChoice(DEFAULT_BACKEND)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _build_params(
    max_tokens: int,
    overlap: float,
    title_prefix: bool,
    index_factory: str = "Flat",
    search_params: str = "",
) -> BuildParams:
    try:
        return BuildParams(
            chunking=ChunkingParams(max_tokens, overlap),
            title_prefix=title_prefix,
            index_factory=index_factory,
            search_params=search_params,
        )
    except ValueError as error:
        raise _fail(str(error)) from None


def _load(source: Path) -> Corpus:
    try:
        corpus = load_corpus(source)
    except FileNotFoundError as error:
        raise _fail(str(error)) from None
    for skipped in corpus.skipped:
        typer.secho(f"skipped {skipped.where}: {skipped.reason}", err=True, fg=typer.colors.YELLOW)
    if not corpus.documents:  # say so before spending seconds loading the model
        raise _fail(f"no documents to index in {source}")
    return corpus


def _embedder(
    model: str, backend: BackendChoice = _DEFAULT_BACKEND, onnx_dir: Path = DEFAULT_ONNX_DIR
) -> Embedder:
    if onnx_variant(backend.value) is not None:  # type: ignore[arg-type]
        _ensure_onnx_export(model, onnx_dir)
    try:
        return load_embedder(model, backend.value, onnx_dir)  # type: ignore[arg-type]
    except ModelLoadError as error:
        raise _fail(str(error)) from None


def _ensure_onnx_export(model: str, onnx_dir: Path) -> None:
    from indexer.onnx_embedding import ensure_export

    try:
        ensure_export(model, onnx_dir, announce=typer.echo)
    except ModelLoadError as error:
        raise _fail(str(error)) from None


@app.command("export-onnx")
def export_onnx_command(
    out: Annotated[Path, typer.Option(envvar="SEARCH_ONNX_DIR", help="Output directory.")] = (
        DEFAULT_ONNX_DIR
    ),
    model: ModelOption = DEFAULT_MODEL,
) -> None:
    """Convert the model for ONNX Runtime (SEARCH_BACKEND=onnx or onnx-int8); takes seconds."""
    from indexer.onnx_embedding import export_onnx

    try:
        export_onnx(model, out)
    except ModelLoadError as error:
        raise _fail(str(error)) from None
    typer.echo(f"exported {model} to {out} (model.onnx, model-int8.onnx)")


@app.command()
def build(
    source: Annotated[
        Path, typer.Option(help="A corpus file or directory of .txt / .jsonl files.")
    ] = Path("seeds"),
    out: IndexDirOption = Path("data/index"),
    model: ModelOption = DEFAULT_MODEL,
    backend: BackendOption = _DEFAULT_BACKEND,
    onnx_dir: OnnxDirOption = DEFAULT_ONNX_DIR,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    overlap: OverlapOption = DEFAULT_OVERLAP,
    title_prefix: TitlePrefixOption = True,
    index_factory: IndexFactoryOption = "Flat",
    search_params: SearchParamsOption = "",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Passages per embedding batch.")
    ] = DEFAULT_BATCH_SIZE,
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Only rebuild when the corpus or settings changed.")
    ] = False,
    progress: ProgressOption = True,
) -> None:
    """Split the corpus into passages, embed and keyword-index them, write the index atomically."""
    params = _build_params(max_tokens, overlap, title_prefix, index_factory, search_params)
    corpus = _load(source)
    if onnx_variant(backend.value) is not None:  # type: ignore[arg-type]
        # Even for an up-to-date index: the service runs the model from this export.
        _ensure_onnx_export(model, onnx_dir)
    if if_stale:
        reason = stale_reason(out, corpus, model, params)
        if reason is None:
            typer.echo(
                f"index at {out} is up to date ({_count(len(corpus.documents), 'document')})"
            )
            return
        typer.echo(f"rebuilding index at {out}: {reason}")
    try:
        report = build_index(
            corpus,
            out,
            _embedder(model, backend, onnx_dir),
            params,
            source_label=str(source),
            progress=progress,
            batch_size=batch_size,
        )
    except BuildError as error:
        raise _fail(str(error)) from None
    counts = report.manifest.counts
    typer.echo(
        f"indexed {_count(counts.documents, 'document')} into "
        f"{_count(counts.passages, 'passage')} in "
        f"{report.seconds:.1f} s ({report.passages_per_second:.1f} passages/s) -> {out}"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in natural language.")],
    index: IndexDirOption = Path("data/index"),
    model: ModelOption = DEFAULT_MODEL,
    backend: BackendOption = _DEFAULT_BACKEND,
    onnx_dir: OnnxDirOption = DEFAULT_ONNX_DIR,
    mode: Annotated[ModeChoice, typer.Option(help="Ranking to use.")] = _DEFAULT_MODE_CHOICE,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many passages.")] = 5,
    source: Annotated[
        list[str] | None, typer.Option(help="Only search this document (repeatable).")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Drop results scoring below this.")
    ] = None,
    group_by_document: Annotated[
        bool, typer.Option("--group-by-document", help="Best passage per document only.")
    ] = False,
    fusion: FusionOption = _DEFAULT_FUSION_CHOICE,
    rrf_k: RrfKOption = _DEFAULT_FUSION.rrf_k,
    semantic_weight: SemanticWeightOption = _DEFAULT_FUSION.semantic_weight,
) -> None:
    """Print the passages that best answer QUERY, with their source and character offsets."""
    if not query.strip():
        raise _fail("the query is empty")
    fusion_params = FusionParams(fusion.value, rrf_k, semantic_weight)
    try:
        searcher = Searcher(
            SearchIndex.open(index), _embedder(model, backend, onnx_dir), fusion_params
        )
        hits = searcher.search(
            Query(
                query.strip(),
                mode=mode.value,  # type: ignore[arg-type]
                k=k,
                sources=source,
                min_score=min_score,
                group_by_document=group_by_document,
            )
        )
    except IndexLoadError as error:
        raise _fail(
            f"{error}; build it with: python -m indexer build --out {index} --model {model}"
        ) from None
    except UnknownDocumentError as error:
        raise _fail(f"unknown document id(s): {', '.join(error.doc_ids)}") from None
    if not hits:
        typer.echo("no passages matched")
    for hit in hits:
        p, e = hit.passage, hit.evidence
        typer.secho(
            f"{hit.rank}. score {hit.score:.4f}  {p.doc_id} [{p.start}:{p.end}] chunk {p.chunk_id}",
            bold=True,
        )
        typer.echo(
            f"   {hit.title}\n   semantic #{e.semantic_rank or '-'} {_fmt(e.semantic_score)}  "
            f"keyword #{e.keyword_rank or '-'} {_fmt(e.keyword_score)}"
        )
        typer.echo(textwrap.indent(textwrap.fill(" ".join(p.text.split()), width=96), "   ") + "\n")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


@app.command("eval")
def evaluate_command(
    collection_dir: Annotated[
        Path, typer.Argument(help="BEIR layout: corpus.jsonl, queries.jsonl, qrels/test.tsv.")
    ],
    mode: Annotated[str, typer.Option(help=f"One of {', '.join(MODES)}, or all.")] = "all",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write results here.")
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    backend: BackendOption = _DEFAULT_BACKEND,
    onnx_dir: OnnxDirOption = DEFAULT_ONNX_DIR,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    overlap: OverlapOption = DEFAULT_OVERLAP,
    title_prefix: TitlePrefixOption = True,
    fusion: FusionOption = _DEFAULT_FUSION_CHOICE,
    rrf_k: RrfKOption = _DEFAULT_FUSION.rrf_k,
    semantic_weight: SemanticWeightOption = _DEFAULT_FUSION.semantic_weight,
    index_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the evaluation index here and reuse it while it is current."),
    ] = None,
    progress: ProgressOption = True,
) -> None:
    """Build an index of the collection with this project's settings and score every query."""
    modes = list(MODES) if mode == "all" else [mode]
    if not set(modes) <= set(MODES):
        raise _fail(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}, or all")
    params = _build_params(max_tokens, overlap, title_prefix)
    fusion_params = FusionParams(fusion.value, rrf_k, semantic_weight)
    collection = load_collection(collection_dir)
    corpus = _load(collection_dir / "corpus.jsonl")
    embedder = _embedder(model, backend, onnx_dir)
    with tempfile.TemporaryDirectory(prefix="eval-index-") as scratch:
        out = index_dir or Path(scratch) / "index"
        if stale_reason(out, corpus, model, params) is not None:
            build_index(
                corpus, out, embedder, params, source_label=str(collection_dir), progress=progress
            )
        searcher = Searcher(SearchIndex.open(out), embedder, fusion_params)
        results = evaluate(searcher, collection, modes, progress=progress)  # type: ignore[arg-type]
    typer.echo(
        f"{collection_dir.name}: {len(corpus.documents)} documents, "
        f"{len(collection.queries)} queries with judgements; {params}; {fusion_params}"
    )
    typer.echo(format_table(results))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            as_json(
                results,
                collection=str(collection_dir),
                model=model,
                build=repr(params),
                fusion=repr(fusion_params),
            ),
            encoding="utf-8",
        )


@app.command(
    "bench",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench_command(ctx: typer.Context) -> None:
    """Benchmark the service (python -m bench; add --help for its options)."""
    try:
        # Imported on demand only: the benchmark's load generator needs httpx, a test extra.
        from bench.__main__ import app as bench_app
    except ImportError as error:
        raise _fail(
            f"{error}; the benchmark needs the test extras: pip install -e '.[test]'"
        ) from None
    bench_app(ctx.args, prog_name="python -m indexer bench")
