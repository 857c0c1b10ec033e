"""The HTTP service: a thin FastAPI layer over the ``indexer`` core."""
