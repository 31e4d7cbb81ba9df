"""bench/extension/notify_cost.py reads the table `strace -c -f` writes: calls per system
call, with or without an errors column, and not the total line."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "extension"))
from notify_cost import parse_strace_summary  # noqa: E402

SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 38.19    0.004391           3      1302           epoll_wait
 21.90    0.002518           2       912           epoll_ctl
  9.31    0.001070           2       396        12 read
  0.05    0.000006           6         1           close
------ ----------- ----------- --------- --------- ----------------
100.00    0.011497           4      2611        12 total
"""


def test_calls_per_system_call_without_the_total():
    assert parse_strace_summary(SUMMARY) == {"epoll_wait": 1302, "epoll_ctl": 912, "read": 396, "close": 1}


def test_nothing_from_an_empty_summary():
    assert parse_strace_summary("") == {}
