"""Build engines: what runs the embedding model over a build's passages (``local``: this
process; ``ray``: an actor pool on a Ray cluster). ``indexer.engines.registry`` picks one."""

from indexer.engines.base import Engine

__all__ = ["Engine"]
