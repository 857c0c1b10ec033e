"""Helpers shared by the tests of several tiers (and data they build on)."""
