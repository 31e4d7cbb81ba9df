"""Helpers shared by the benchmarks under bench/: private servers on loopback, the pooler
configurations side by side, CPU and memory accounting, pgbench, interleaved repeats."""
