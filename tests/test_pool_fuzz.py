"""A short, bounded libFuzzer run of the PostgreSQL wire codec (client and server side).

Builds the clang/libFuzzer target in build/fuzz when it is missing, then fuzzes for a few
seconds; any crash, sanitizer report or leak fails the test.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "fuzz")
TARGET = os.path.join(BUILD, "pg_protocol_fuzz")


def _build():
    if shutil.which("clang++-14") is None:
        pytest.skip("clang++-14 not installed")
    subprocess.run(["cmake", "-S", os.path.join(ROOT, "daemon"), "-B", BUILD, "-DPGCOHERE_FUZZ=ON",
                    "-DCMAKE_CXX_COMPILER=clang++-14", "-DCMAKE_C_COMPILER=clang-14",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "-j2", "--target", "pg_protocol_fuzz"], check=True,
                   stdout=subprocess.DEVNULL)


def test_protocol_codec_survives_fuzzing():
    _build()
    seeds = os.path.join(ROOT, "daemon", "fuzz", "corpus", "pg_protocol")
    with tempfile.TemporaryDirectory(prefix="pool-fuzz-") as corpus:
        args = [TARGET, "-max_total_time=" + os.environ.get("PGC_FUZZ_SECONDS", "15"),
                "-rss_limit_mb=1024", corpus]
        if os.path.isdir(seeds):
            args.append(seeds)
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout[-4000:]
        assert "Done" in r.stdout
