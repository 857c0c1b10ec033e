"""Where things are, for any test."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# What tests measure or render for people to look at (screenshots, timings, counts).
ARTIFACTS = REPO / "test-artifacts"
SEEDS = REPO / "seeds"
