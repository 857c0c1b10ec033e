"""``python -m indexer``: build an index, search it, or evaluate relevance on a BEIR collection."""

from __future__ import annotations

import contextlib
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from indexer.backends import BACKENDS, onnx_variant
from indexer.build import (
    BuildError,
    BuildParams,
    BuildReport,
    build_if_stale,
    build_index,
    live_corpus,
    stale_at,
)
from indexer.build_progress import BuildMeter
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder, ModelLoadError
from indexer.embedding_cache import CacheOpenError, EmbeddingCache, open_cache
from indexer.engines import Engine
from indexer.engines.registry import ENGINES, make_engine
from indexer.evaluation import (
    Collection,
    MissingEvalExtraError,
    ModeResult,
    as_json,
    evaluate,
    format_table,
    load_collection,
    trec_eval,
)
from indexer.filters import Filter, FilterError, parse_filter_json
from indexer.loading import Corpus, load_corpus
from indexer.search import DEFAULT_MODE, MODES, ModelMismatchError, Query, Searcher
from indexer.settings import IndexSettings
from indexer.stores import open_store
from indexer.stores.base import (
    IncompatibleSnapshotError,
    SearchUnsupportedError,
    SnapshotError,
    StoreError,
    StoreLockedError,
    StoreMissingError,
    StoreOpenError,
    StoreUnavailableError,
    save_snapshot,
)

app = typer.Typer(help="Build, query and evaluate semantic search indexes.", no_args_is_help=True)

ModeChoice = StrEnum("ModeChoice", {m: m for m in MODES})  # type: ignore[misc]
FusionChoice = StrEnum("FusionChoice", {"rrf": "rrf", "convex": "convex"})
BackendChoice = StrEnum("BackendChoice", {b: b for b in BACKENDS})  # type: ignore[misc]


def _setting(field: str, *names: str) -> Any:
    """An option whose default is the setting's: the environment variable, else the built-in
    default. It defaults to None here, and ``_settings`` fills it in from ``IndexSettings``,
    so that the CLI, the service and the benchmarks read each variable in one place."""
    info = IndexSettings.model_fields[field]
    default = info.default if info.default != "" else "none"
    return typer.Option(
        *names,
        help=f"{info.description} (SEARCH_{field.upper()}; default: {default})",
        show_default=False,
    )


ModelOption = Annotated[str | None, _setting("model", "--model")]
StoreOption = Annotated[str | None, _setting("store", "--store")]
MilvusUriOption = Annotated[str | None, _setting("milvus_uri", "--milvus-uri")]
MilvusCollectionOption = Annotated[str | None, _setting("milvus_collection", "--milvus-collection")]
IndexDirOption = Annotated[Path | None, _setting("index_dir", "--index", "--out")]
MaxTokensOption = Annotated[int | None, _setting("chunk_max_tokens", "--max-tokens")]
OverlapOption = Annotated[float | None, _setting("chunk_overlap", "--overlap")]
TitlePrefixOption = Annotated[
    bool | None, _setting("title_prefix", "--title-prefix/--no-title-prefix")
]
IndexFactoryOption = Annotated[str | None, _setting("index_factory", "--index-factory")]
SearchParamsOption = Annotated[str | None, _setting("search_params", "--search-params")]
FusionOption = Annotated[FusionChoice | None, _setting("fusion", "--fusion")]
RrfKOption = Annotated[int | None, _setting("rrf_k", "--rrf-k")]
SemanticWeightOption = Annotated[float | None, _setting("semantic_weight", "--semantic-weight")]
BackendOption = Annotated[BackendChoice | None, _setting("backend", "--backend")]
OnnxDirOption = Annotated[Path | None, _setting("onnx_dir", "--onnx-dir")]
ProgressOption = Annotated[bool, typer.Option(help="Show progress bars.")]
EngineChoice = StrEnum("EngineChoice", {e: e for e in ENGINES})  # type: ignore[misc]
EngineOption = Annotated[EngineChoice | None, _setting("engine", "--engine")]
RayAddressOption = Annotated[str | None, _setting("ray_address", "--ray-address")]
RayActorsOption = Annotated[int | None, _setting("ray_actors", "--ray-actors")]
ActorThreadsOption = Annotated[int | None, _setting("ray_actor_threads", "--ray-actor-threads")]
NumGpusOption = Annotated[float | None, _setting("num_gpus", "--num-gpus")]
CacheOption = Annotated[str | None, _setting("embedding_cache", "--embedding-cache")]

_DEFAULT_MODE_CHOICE = ModeChoice(DEFAULT_MODE)


def _settings(**options: object) -> IndexSettings:
    """The settings, with the options given on the command line in place of the environment."""
    given = {
        name: value.value if isinstance(value, StrEnum) else value
        for name, value in options.items()
        if value is not None
    }
    try:
        return IndexSettings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        # Named by their variable: the same name whether it came from an option or the environment.
        problems = "; ".join(
            f"SEARCH_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise _fail(problems) from None


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


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


def _copied_corpus(
    settings: IndexSettings, index_dir: Path | None, collection: str | None
) -> tuple[Corpus, str]:
    """Every live document of the store ``--from-index`` (a FAISS directory) or
    ``--from-collection`` (a collection at the Milvus URI) names, and a label saying which."""
    if index_dir is not None:
        source = settings.model_copy(update={"store": "faiss", "index_dir": index_dir})
    else:
        source = settings.model_copy(update={"store": "milvus", "milvus_collection": collection})
    try:
        store = open_store(source, writable=False)
    except (ValueError, StoreError) as error:  # ValueError: a bad collection name
        raise _fail(str(error)) from None
    try:
        corpus, label = live_corpus(store)
    finally:
        store.close()
    if not corpus.documents:
        raise _fail(f"no documents to index in {label}")
    typer.echo(f"read {_count(len(corpus.documents), 'document')} from {label}")
    return corpus, label


def _embedder(settings: IndexSettings) -> Embedder:
    from indexer.backends import load_embedder

    if onnx_variant(settings.backend) is not None:
        _ensure_onnx_export(settings)
    try:
        return load_embedder(settings.model, settings.backend, settings.onnx_dir)
    except ModelLoadError as error:
        raise _fail(str(error)) from None


def _ensure_onnx_export(settings: IndexSettings) -> None:
    from indexer.onnx_embedding import ensure_export

    try:
        ensure_export(settings.model, settings.onnx_dir, announce=typer.echo)
    except ModelLoadError as error:
        raise _fail(str(error)) from None


@app.command("export-onnx")
def export_onnx_command(
    out: Annotated[Path | None, _setting("onnx_dir", "--out")] = None,
    model: ModelOption = None,
) -> None:
    """Convert the model for ONNX Runtime (SEARCH_BACKEND=onnx or onnx-int8); takes seconds."""
    from indexer.onnx_embedding import export_onnx

    settings = _settings(onnx_dir=out, model=model)
    try:
        export_onnx(settings.model, settings.onnx_dir)
    except ModelLoadError as error:
        raise _fail(str(error)) from None
    typer.echo(f"exported {settings.model} to {settings.onnx_dir} (model.onnx, model-int8.onnx)")


@app.command()
def build(
    source: Annotated[
        Path, typer.Option(help="A corpus file or directory of .txt / .jsonl files.")
    ] = Path("seeds"),
    out: IndexDirOption = None,
    store: StoreOption = None,
    milvus_uri: MilvusUriOption = None,
    milvus_collection: MilvusCollectionOption = None,
    model: ModelOption = None,
    backend: BackendOption = None,
    onnx_dir: OnnxDirOption = None,
    max_tokens: MaxTokensOption = None,
    overlap: OverlapOption = None,
    title_prefix: TitlePrefixOption = None,
    index_factory: IndexFactoryOption = None,
    search_params: SearchParamsOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Passages per embedding batch.")
    ] = DEFAULT_BATCH_SIZE,
    from_index: Annotated[
        Path | None,
        typer.Option(
            help="Instead of files: the live documents of this index directory (those written "
            "through the API included), e.g. to move a corpus into Milvus or rebuild it with "
            "new settings.",
        ),
    ] = None,
    from_collection: Annotated[
        str | None,
        typer.Option(
            help="Instead of files: the live documents of this Milvus collection (at the "
            "Milvus URI), e.g. to rebuild it into another collection with new settings.",
        ),
    ] = None,
    if_stale: Annotated[
        bool,
        typer.Option(
            "--if-stale",
            help="Only rebuild when the corpus or settings changed, and never an index that "
            "has taken writes through the API (it is served as it is).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an index that has taken writes through the API (lost)."
        ),
    ] = False,
    progress: ProgressOption = True,
    engine: EngineOption = None,
    ray_address: RayAddressOption = None,
    ray_actors: RayActorsOption = None,
    ray_actor_threads: ActorThreadsOption = None,
    num_gpus: NumGpusOption = None,
    embedding_cache: CacheOption = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the build of this index that was killed or failed: embed only the "
            "passages it had not (it must be of the same corpus, with the same settings).",
        ),
    ] = False,
    json_events: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Progress as JSON events on standard output, one a line (for a job runner); "
            "messages go to standard error.",
        ),
    ] = False,
) -> None:
    """Split the corpus into passages, embed and keyword-index them, write the index atomically
    (or into Milvus, with --store milvus). Every vector goes to the embedding cache as it is
    made: a build killed midway continues with --resume, a rebuild embeds only what changed."""
    settings = _settings(
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors,
        ray_actor_threads=ray_actor_threads,
        num_gpus=num_gpus,
        embedding_cache=embedding_cache,
        index_dir=out,
        store=store,
        milvus_uri=milvus_uri,
        milvus_collection=milvus_collection,
        model=model,
        backend=backend,
        onnx_dir=onnx_dir,
        chunk_max_tokens=max_tokens,
        chunk_overlap=overlap,
        title_prefix=title_prefix,
        index_factory=index_factory,
        search_params=search_params,
    )
    kind, params = settings.store_kind, settings.build_params
    say = _Say(json_events)
    if resume and if_stale:
        raise _fail("--resume continues a build; --if-stale decides whether to build (not both)")
    if resume and settings.embedding_cache is None:
        raise _fail("--resume continues from the embedding cache: set SEARCH_EMBEDDING_CACHE")
    if from_index is not None or from_collection is not None:
        if if_stale or (from_index is not None and from_collection is not None):
            raise _fail("--from-index and --from-collection go alone (and not with --if-stale)")
        corpus, label = _copied_corpus(settings, from_index, from_collection)
    else:
        corpus, label = _load(source), str(source)
    if onnx_variant(settings.backend) is not None:
        # Even for an up-to-date index: the service runs the model from this export.
        _ensure_onnx_export(settings)
    location = settings.store_location
    meter = BuildMeter("json" if json_events else "auto" if progress else "off")
    engines: list[Engine] = []

    def engine_for(embedder: Embedder) -> Engine:
        made = make_engine(settings, embedder, batch_size=batch_size)
        engines.append(made)
        if made.name != "local":
            say(f"embedding with the {made.name} engine: {made.describe()}")
        return made

    with _cache(settings) as cache:
        if resume and cache is not None:
            _announce_resume(cache, kind.describe(location), say)
        try:
            if if_stale:
                command = (
                    f"python -m indexer build --source {source} {kind.build_options(settings)}"
                )
                report = build_if_stale(
                    corpus,
                    location,
                    lambda: _embedder(settings),
                    params,
                    model_name=settings.model,
                    source_label=label,
                    rebuild_command=command,
                    announce=say,
                    progress=progress,
                    batch_size=batch_size,
                    force=force,
                    engine=engine_for,
                    cache=cache,
                    meter=meter,
                )
            else:
                embedder = _embedder(settings)
                report = build_index(
                    corpus,
                    location,
                    embedder,
                    params,
                    source_label=label,
                    progress=progress,
                    batch_size=batch_size,
                    force=force,
                    engine=engine_for(embedder),
                    cache=cache,
                    resume=resume,
                    meter=meter,
                )
        except (BuildError, ModelLoadError) as error:
            raise _fail(str(error)) from None
        finally:
            for made in engines:
                made.close()
    if report is not None:
        _built(report, kind.describe(location), say, meter)


class _Say:
    """The build's messages: on standard output, or standard error when it carries JSON."""

    def __init__(self, json_events: bool) -> None:
        self.err = json_events

    def __call__(self, message: str) -> None:
        typer.echo(message, err=self.err)


@contextlib.contextmanager
def _cache(settings: IndexSettings) -> Iterator[EmbeddingCache | None]:
    if settings.embedding_cache is None:
        yield None
        return
    try:
        cache = open_cache(settings.embedding_cache, settings.model, settings.backend)
    except CacheOpenError as error:
        raise _fail(str(error)) from None
    with cache:
        yield cache


def _announce_resume(cache: EmbeddingCache, target: str, say: _Say) -> None:
    unfinished = cache.unfinished(target)
    if unfinished is not None:
        say(
            f"resuming the build of {target}: {unfinished.embedded} of "
            f"{unfinished.total} passages were embedded before it stopped"
        )


def _built(report: BuildReport, where: str, say: _Say, meter: BuildMeter) -> None:
    counts = report.manifest.counts
    stats = report.embedding
    embedded = f"; {stats.summary()}" if stats is not None else ""
    say(
        f"indexed {_count(counts.documents, 'document')} into "
        f"{_count(counts.passages, 'passage')} in "
        f"{report.seconds:.1f} s ({report.passages_per_second:.1f} passages/s) -> {where}"
        f"{embedded}"
    )
    meter.event(
        "built",
        where=where,
        documents=counts.documents,
        passages=counts.passages,
        seconds=report.seconds,
        embedded=stats.embedded if stats else None,
        cached=stats.cached if stats else None,
        repeated=stats.repeated if stats else None,
        hit_rate=round(stats.hit_rate, 4) if stats else None,
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in natural language.")],
    index: IndexDirOption = None,
    store: StoreOption = None,
    milvus_uri: MilvusUriOption = None,
    milvus_collection: MilvusCollectionOption = None,
    model: ModelOption = None,
    backend: BackendOption = None,
    onnx_dir: OnnxDirOption = None,
    mode: Annotated[ModeChoice, typer.Option(help="Ranking to use.")] = _DEFAULT_MODE_CHOICE,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many passages.")] = 5,
    source: Annotated[
        list[str] | None, typer.Option(help="Only search this document (repeatable).")
    ] = None,
    filter_json: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help='Only documents matching this filter, e.g. \'{"year": {"gte": 2019}}\'.',
        ),
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Drop results scoring below this.")
    ] = None,
    group_by_document: Annotated[
        bool, typer.Option("--group-by-document", help="Best passage per document only.")
    ] = False,
    fusion: FusionOption = None,
    rrf_k: RrfKOption = None,
    semantic_weight: SemanticWeightOption = None,
) -> None:
    """Print the passages that best answer QUERY, with their source and character offsets."""
    if not query.strip():
        raise _fail("the query is empty")
    settings = _settings(
        index_dir=index,
        store=store,
        milvus_uri=milvus_uri,
        milvus_collection=milvus_collection,
        model=model,
        backend=backend,
        onnx_dir=onnx_dir,
        fusion=fusion,
        rrf_k=rrf_k,
        semantic_weight=semantic_weight,
    )
    try:
        query_filter = parse_filter_json(filter_json) if filter_json else None
    except FilterError as error:
        raise _fail(str(error)) from None
    if source:
        query_filter = (
            query_filter.with_doc_ids(source) if query_filter else Filter.of_doc_ids(source)
        )
    try:
        opened = open_store(settings, writable=False)
    except (StoreMissingError, StoreOpenError) as error:
        where = settings.store_kind.build_options(settings)
        raise _fail(
            f"{error}; build it with: python -m indexer build {where} --model {settings.model}"
        ) from None
    except StoreError as error:
        raise _fail(str(error)) from None
    try:
        searcher = Searcher(opened, _embedder(settings), settings.fusion_params)
        hits = searcher.search(
            Query(
                query.strip(),
                mode=mode.value,  # type: ignore[arg-type]
                k=k,
                filter=query_filter,
                min_score=min_score,
                group_by_document=group_by_document,
            )
        )
    except (ModelMismatchError, SearchUnsupportedError, StoreUnavailableError) as error:
        raise _fail(str(error)) from None
    finally:
        opened.close()
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


@app.command()
def snapshot(
    out: Annotated[Path, typer.Option("--out", help="The archive to write (a .tar file).")],
    index: Annotated[Path | None, _setting("index_dir", "--index")] = None,
) -> None:
    """Archive a live index (version, translog, vectors, keyword index, manifest) consistently,
    without pausing the service that serves it: it takes no lock and writes nothing there."""
    settings = _settings(index_dir=index, store="faiss")  # --index: an index directory
    location = settings.store_location
    try:
        pinned = settings.store_kind.snapshot(location)
        save_snapshot(pinned, out)
    except (SnapshotError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(
        f"snapshot of {location} ({pinned.label}, up to write {pinned.seq}) -> {out} "
        f"({out.stat().st_size} bytes)"
    )


@app.command()
def reindex(
    index: Annotated[Path | None, _setting("index_dir", "--index")] = None,
    store: StoreOption = None,
    milvus_uri: MilvusUriOption = None,
    milvus_collection: MilvusCollectionOption = None,
    model: Annotated[
        str | None, typer.Option(help="Another model to embed with (default: the index's).")
    ] = None,
    backend: BackendOption = None,
    onnx_dir: OnnxDirOption = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=8, help="New passage size limit in model tokens.")
    ] = None,
    overlap: Annotated[
        float | None, typer.Option(min=0, max=0.49, help="New window overlap share.")
    ] = None,
    title_prefix: Annotated[
        bool | None,
        typer.Option("--title-prefix/--no-title-prefix", help="Embed passages with titles."),
    ] = None,
    bm25_k1: Annotated[float | None, typer.Option(min=0, help="New BM25 k1.")] = None,
    bm25_b: Annotated[float | None, typer.Option(min=0, max=1, help="New BM25 b.")] = None,
) -> None:
    """Rebuild an index with new settings or another model into a new version, switched to
    atomically; every setting left out keeps the index's. For a FAISS index a service holds,
    use its POST /admin/reindex instead (writes go on meanwhile). A Milvus store may be
    reindexed from here while replicas serve it: they follow the switch."""
    from indexer.reindex import ReindexChanges
    from indexer.reindex import reindex as run_reindex
    from indexer.stores.base import ReindexError

    located = _settings(
        index_dir=index, store=store, milvus_uri=milvus_uri, milvus_collection=milvus_collection
    )
    where = located.index_location
    try:
        opened = open_store(located)
    except StoreLockedError as error:
        typer.secho(
            f"error: {error}: reindex a served index with POST /admin/reindex on its service",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=2) from None
    except StoreError as error:
        raise _fail(str(error)) from None
    try:
        if opened.read_only is not None:
            raise _fail(f"cannot reindex {where}: {opened.read_only}")
        settings = _settings(
            index_dir=index,
            store=store,
            milvus_uri=milvus_uri,
            milvus_collection=milvus_collection,
            model=model or opened.manifest.model.name,
            backend=backend,
            onnx_dir=onnx_dir,
        )
        changes = ReindexChanges(max_tokens, overlap, title_prefix, bm25_k1, bm25_b)
        shown = [""]

        def report(phase: str, done: int, total: int) -> None:
            if phase != shown[0] or done == total:
                shown[0] = phase
                typer.echo(f"{phase}: {done}/{total}", err=True)

        try:
            with _cache(settings) as cache:
                manifest = run_reindex(
                    opened, _embedder(settings), changes, progress=report, cache=cache
                )
        except (ReindexError, ValueError) as error:
            raise _fail(f"{error}; the index is unchanged") from None
        if opened.retire_seconds:
            typer.echo(
                f"switched; replicas move at their next refresh, and the old version is "
                f"dropped in {opened.retire_seconds:.0f} s",
                err=True,
            )
            opened.wait_retired()
    finally:
        opened.close()
    typer.echo(
        f"reindexed {where}: {_count(manifest.counts.documents, 'document')}, "
        f"{_count(manifest.counts.passages, 'passage')}, model {manifest.model.name}, "
        f"{manifest.chunking.max_tokens} tokens per passage, up to write {manifest.seq}"
    )


@app.command()
def restore(
    archive: Annotated[Path, typer.Option("--archive", help="A snapshot archive (.tar).")],
    out: Annotated[Path, typer.Option("--out", help="The index directory to rebuild.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace what is in --out (it is lost).")
    ] = False,
) -> None:
    """Rebuild an index directory from a snapshot, checking its format and checksums."""
    settings = _settings(index_dir=out, store="faiss")  # --out: an index directory
    try:
        restored_seq = settings.store_kind.restore(archive, settings.store_location, force=force)
    except IncompatibleSnapshotError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    except (SnapshotError, OSError) as error:
        raise _fail(str(error)) from None
    try:  # what the service will do at start-up: the version, then the translog replayed
        store = open_store(settings, writable=False)
    except StoreError as error:
        raise _fail(f"the restored index does not open: {error}") from None
    try:
        reader = store.reader()  # opened read-only: everything replayed is published
        seq, documents = reader.seq, reader.document_count
    finally:
        store.close()
    if seq != restored_seq:
        raise _fail(f"the restored index opens at write {seq}, the snapshot holds {restored_seq}")
    typer.echo(f"restored {archive} -> {out}: {_count(documents, 'document')}, up to write {seq}")


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
    model: ModelOption = None,
    backend: BackendOption = None,
    onnx_dir: OnnxDirOption = None,
    max_tokens: MaxTokensOption = None,
    overlap: OverlapOption = None,
    title_prefix: TitlePrefixOption = None,
    fusion: FusionOption = None,
    rrf_k: RrfKOption = None,
    semantic_weight: SemanticWeightOption = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the evaluation index here and reuse it while it is current."),
    ] = None,
    store: StoreOption = None,
    milvus_uri: Annotated[
        str | None,
        typer.Option(
            help="With --store milvus: a Milvus server to evaluate on (a temporary collection, "
            "dropped after); default: Milvus Lite in a temporary file."
        ),
    ] = None,
    progress: ProgressOption = True,
) -> None:
    """Build an index of the collection with this project's settings and score every query."""
    modes = list(MODES) if mode == "all" else [mode]
    if not set(modes) <= set(MODES):
        raise _fail(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}, or all")
    try:
        trec_eval()  # before the index build: say so at once when the eval extra is missing
    except MissingEvalExtraError as error:
        raise _fail(str(error)) from None
    settings = _settings(
        store=store,
        model=model,
        backend=backend,
        onnx_dir=onnx_dir,
        chunk_max_tokens=max_tokens,
        chunk_overlap=overlap,
        title_prefix=title_prefix,
        fusion=fusion,
        rrf_k=rrf_k,
        semantic_weight=semantic_weight,
    )
    if index_dir is not None and settings.store != "faiss":
        raise _fail(
            f"--index-dir keeps a FAISS index; --store {settings.store} evaluates in a "
            "temporary store"
        )
    # The evaluation measures chunking, embedding and ranking, so it always uses exact search.
    kind = settings.store_kind
    params = replace(settings.build_params, index_factory=kind.exact_index, search_params="")
    collection = load_collection(collection_dir)
    corpus = _load(collection_dir / "corpus.jsonl")
    embedder = _embedder(settings)
    with tempfile.TemporaryDirectory(prefix="eval-") as scratch:
        name = f"eval_{uuid.uuid4().hex[:12]}"
        keep = index_dir is not None  # reused while it is current
        if index_dir is not None:
            location = settings.model_copy(update={"index_dir": index_dir}).store_location
        elif milvus_uri is not None:
            where = {"milvus_uri": milvus_uri, "milvus_collection": name}
            location = settings.model_copy(update=where).store_location
        else:
            location = kind.location_in(Path(scratch), name)
        try:
            if not keep or stale_at(location, corpus, settings.model, params) is not None:
                build_index(
                    corpus,
                    location,
                    embedder,
                    params,
                    source_label=str(collection_dir),
                    progress=progress,
                )
            opened = kind.open(location, writable=False)
            try:
                searcher = Searcher(opened, embedder, settings.fusion_params)
                results = evaluate(searcher, collection, modes, progress=progress)  # type: ignore[arg-type]
            finally:
                opened.close()
        except (BuildError, StoreError) as error:
            raise _fail(str(error)) from None
        finally:
            if not keep:
                with contextlib.suppress(StoreError, OSError):
                    kind.drop(location)
    _report_evaluation(collection_dir, corpus, collection, params, settings, results, json_out)


def _report_evaluation(
    collection_dir: Path,
    corpus: Corpus,
    collection: Collection,
    params: BuildParams,
    settings: IndexSettings,
    results: list[ModeResult],
    json_out: Path | None,
) -> None:
    fusion_params = settings.fusion_params
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
                model=settings.model,
                build=repr(params),
                fusion=repr(fusion_params),
            ),
            encoding="utf-8",
        )
