"""``python -m indexer``: build an index from a corpus, or search one from the terminal."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated

import typer

from indexer.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, ChunkingParams
from indexer.embedding import DEFAULT_MODEL, ModelLoadError, SentenceTransformerEmbedder
from indexer.index import BuildError, IndexLoadError, SearchIndex, build_index, stale_reason
from indexer.loading import load_corpus
from indexer.search import Searcher, UnknownDocumentError

app = typer.Typer(help="Build and query semantic search indexes.", no_args_is_help=True)

ModelOption = Annotated[
    str, typer.Option("--model", envvar="SEARCH_MODEL", help="Embedding model name or directory.")
]
IndexDirOption = Annotated[
    Path, typer.Option("--index", "--out", envvar="SEARCH_INDEX_DIR", help="Index directory.")
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@app.command()
def build(
    source: Annotated[
        Path, typer.Option(help="A corpus file or directory of .txt / .jsonl files.")
    ] = Path("seeds"),
    out: IndexDirOption = Path("data/index"),
    model: ModelOption = DEFAULT_MODEL,
    max_tokens: Annotated[
        int,
        typer.Option(envvar="SEARCH_CHUNK_MAX_TOKENS", help="Passage size limit in model tokens."),
    ] = DEFAULT_MAX_TOKENS,
    overlap: Annotated[
        float,
        typer.Option(envvar="SEARCH_CHUNK_OVERLAP", help="Share of a window repeated in the next."),
    ] = DEFAULT_OVERLAP,
    batch_size: Annotated[int, typer.Option(help="Passages per embedding batch.")] = 64,
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Only rebuild when the corpus or settings changed.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Split the corpus into passages, embed them and write an index directory atomically."""
    try:
        params = ChunkingParams(max_tokens=max_tokens, overlap=overlap)
        corpus = load_corpus(source)
    except (ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from None
    for skipped in corpus.skipped:
        typer.secho(f"skipped {skipped.where}: {skipped.reason}", err=True, fg=typer.colors.YELLOW)
    if not corpus.documents:  # say so before spending seconds loading the model
        raise _fail(f"no documents to index in {source}")
    if if_stale:
        reason = stale_reason(out, corpus, model, params)
        if reason is None:
            typer.echo(f"index at {out} is up to date ({len(corpus.documents)} documents)")
            return
        typer.echo(f"rebuilding index at {out}: {reason}")
    try:
        embedder = SentenceTransformerEmbedder(model)
        report = build_index(
            corpus,
            out,
            embedder,
            params,
            source_label=str(source),
            progress=progress,
            batch_size=batch_size,
        )
    except (BuildError, ModelLoadError) as error:
        raise _fail(str(error)) from None
    counts = report.manifest.counts
    typer.echo(
        f"indexed {counts.documents} documents into {counts.passages} passages in "
        f"{report.seconds:.1f} s ({report.passages_per_second:.1f} passages/s) -> {out}"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in natural language.")],
    index: IndexDirOption = Path("data/index"),
    model: ModelOption = DEFAULT_MODEL,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many passages.")] = 5,
    source: Annotated[
        list[str] | None, typer.Option(help="Only search this document (repeatable).")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Drop passages scoring below this.")
    ] = None,
) -> None:
    """Print the passages that best answer QUERY, with their source and character offsets."""
    if not query.strip():
        raise _fail("the query is empty")
    try:
        searcher = Searcher(SearchIndex.open(index), SentenceTransformerEmbedder(model))
        hits = searcher.search(query.strip(), k=k, sources=source, min_score=min_score)
    except IndexLoadError as error:
        raise _fail(
            f"{error}; build it with: python -m indexer build --out {index} --model {model}"
        ) from None
    except ModelLoadError as error:
        raise _fail(str(error)) from None
    except UnknownDocumentError as error:
        raise _fail(f"unknown document id(s): {', '.join(error.doc_ids)}") from None
    if not hits:
        typer.echo("no passages matched")
    for hit in hits:
        p = hit.passage
        typer.secho(
            f"{hit.rank}. score {hit.score:.3f}  {p.doc_id} [{p.start}:{p.end}] chunk {p.chunk_id}",
            bold=True,
        )
        typer.echo(f"   {hit.title}")
        typer.echo(textwrap.indent(textwrap.fill(" ".join(p.text.split()), width=96), "   ") + "\n")
