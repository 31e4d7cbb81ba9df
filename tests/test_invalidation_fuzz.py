"""A short, bounded libFuzzer run of the NOTIFY payload decoder (daemon/fuzz/), built with
clang-14 into build/fuzz when it is not there yet. Longer runs: see docs/invalidation.md."""
import os
import shutil
import subprocess

import pytest

from harness.servers import REPO

FUZZ_DIR = os.path.join(REPO, "build", "fuzz")
TARGET = os.path.join(FUZZ_DIR, "notify_payload_fuzz")
CORPUS = os.path.join(REPO, "daemon", "fuzz", "corpus", "notify_payload")


def build_fuzzer():
    if not shutil.which("clang++-14"):
        pytest.skip("clang++-14 is not installed")
    subprocess.run(["cmake", "-S", os.path.join(REPO, "daemon"), "-B", FUZZ_DIR, "-DPGCOHERE_FUZZ=ON",
                    "-DCMAKE_CXX_COMPILER=clang++-14", "-DCMAKE_C_COMPILER=clang-14",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", FUZZ_DIR, "-j2", "--target", "notify_payload_fuzz"], check=True,
                   stdout=subprocess.DEVNULL)


def test_payload_decoder_survives_a_short_fuzzing_run(tmp_path):
    build_fuzzer()
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    out = subprocess.run([TARGET, "-max_total_time=10", "-max_len=9000", "-timeout=5", "-rss_limit_mb=1024",
                          f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr
