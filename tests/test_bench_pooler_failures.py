"""bench/pooler/bench.py names a failed case by what failed and by the tool's last word: a
pgbench whose stderr ends with "starting vacuum...end." must still say which command failed."""
import importlib.util
import os
import sys

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")
sys.path.insert(0, BENCH)  # its `common` package
# Loaded by path under its own name: bench/cache has a bench.py too, which other tests import.
_spec = importlib.util.spec_from_file_location("pooler_bench", os.path.join(BENCH, "pooler", "bench.py"))
pooler_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pooler_bench)
failure_summary = pooler_bench.failure_summary


def test_a_failure_names_the_command_and_the_tools_last_line():
    reason = ("pgbench reported no throughput: pgbench -h 127.0.0.1 -S -c 500 -T 10 postgres\n"
              "starting vacuum...end.\n")
    assert failure_summary(reason) == ("pgbench reported no throughput: pgbench -h 127.0.0.1 -S -c 500 -T 10 postgres"
                                       " ... starting vacuum...end.")


def test_a_one_line_or_empty_reason_is_shown_as_it_is():
    assert failure_summary("pgbench failed: timeout") == "pgbench failed: timeout"
    assert failure_summary("\n\n") == "?"
    assert failure_summary(None) == "?"
