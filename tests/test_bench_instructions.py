"""bench/cache/instructions.py reads callgrind's own output: the total of a dump, and each
function's own instructions, with the frames a mid-run dump charges for open calls left out.
Checked on a real callgrind run of a small program whose costs are known in proportion."""
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "cache"))
from instructions import per_function, total  # noqa: E402

PROGRAM = r"""
volatile unsigned long sink;
__attribute__((noinline)) void spin_short(void) { for (int i = 0; i < 100000; i++) sink += i; }
__attribute__((noinline)) void spin_long(void) { for (int i = 0; i < 400000; i++) sink += i; }
int main(void) { spin_short(); spin_long(); return 0; }
"""


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        pytest.skip("valgrind is not installed (the callgrind benchmark needs it)")
    d = tmp_path_factory.mktemp("callgrind")
    (d / "spin.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-g", "-o", str(d / "spin"), str(d / "spin.c")], check=True)
    out = d / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", str(d / "spin")],
                   check=True, capture_output=True)
    return str(out)


def test_each_function_gets_its_own_instructions_in_proportion(dump):
    costs = per_function(dump)
    assert costs["spin_short"] > 100000
    assert 3.5 < costs["spin_long"] / costs["spin_short"] < 4.5


def test_main_and_the_frames_below_it_are_left_out(dump):
    costs = per_function(dump)
    assert "main" not in costs and "(below main)" not in costs


def test_the_total_covers_every_function(dump):
    assert total(dump) >= sum(per_function(dump).values()) > 0
