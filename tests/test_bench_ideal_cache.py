"""bench/cache/ideal.py: the ideal coherent cache the chat benchmark compares its measured hit
ratio with misses exactly at a key's first read, after its TTL, and after a write to its tag."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "cache"))
from ideal import ideal_hit_ratios  # noqa: E402


def ratios(reads, writes, ttl=10.0, burst=lambda t: False, counted=lambda t: True):
    return ideal_hit_ratios(reads, writes, lambda key: ttl, counted, burst)


def test_a_key_misses_once_then_hits_until_its_ttl_runs_out():
    reads = [(0.0, "c1", "k"), (1.0, "c1", "k"), (9.9, "c1", "k"), (10.0, "c1", "k"), (11.0, "c1", "k")]
    # misses at 0 and at 10 (the entry filled at 0 expired), hits at 1, 9.9 and 11
    assert ratios(reads, [])[False] == 3 / 5


def test_a_write_to_the_tag_makes_every_key_of_it_miss_once_and_leaves_other_tags_alone():
    reads = [(0.0, "c1", "a"), (0.0, "c1", "b"), (0.0, "c2", "x"),
             (2.0, "c1", "a"), (2.0, "c1", "b"), (2.0, "c2", "x"), (3.0, "c1", "a")]
    # the write returned at 1: a and b miss at 2, x hits, a hits again at 3
    assert ratios(reads, [(1.0, "c1")])[False] == 2 / 7


def test_a_read_that_starts_when_the_write_returned_misses():
    assert ratios([(0.0, "c1", "a"), (1.0, "c1", "a")], [(1.0, "c1")])[False] == 0.0


def test_reads_are_classed_by_burst_and_only_measured_ones_count():
    reads = [(0.0, "c1", "a"), (1.0, "c1", "a"), (5.0, "c1", "a"), (5.5, "c2", "b")]
    r = ratios(reads, [], burst=lambda t: t >= 5, counted=lambda t: t >= 1)
    assert r[False] == 1.0  # the read at 1 (the one at 0 filled the cache but is not counted)
    assert r[True] == 1 / 2  # a hits, b misses
    assert ratios([], [])[True] is None
