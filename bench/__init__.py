"""Benchmarks: latency, throughput, indexing rate, memory and scale, printed and saved as JSON.

Kept out of ``indexer`` because it drives the service over HTTP; results go to bench/results/.
"""
