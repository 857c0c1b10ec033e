"""The installed version of the client (sent in its User-Agent)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("semantic-search-client")
except PackageNotFoundError:  # imported from a source tree
    __version__ = "0+unknown"
