"""Short, bounded libFuzzer runs of the auth_file parser, the SCRAM messages and state
machines, and the admin console (daemon/fuzz/), built with clang-14 into build/fuzz."""
import os
import shutil
import subprocess

import pytest

from harness.servers import REPO

FUZZ_DIR = os.path.join(REPO, "build", "fuzz")


def build(target):
    if not shutil.which("clang++-14"):
        pytest.skip("clang++-14 is not installed")
    subprocess.run(["cmake", "-S", os.path.join(REPO, "daemon"), "-B", FUZZ_DIR, "-DPGCOHERE_FUZZ=ON",
                    "-DCMAKE_CXX_COMPILER=clang++-14", "-DCMAKE_C_COMPILER=clang-14",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", FUZZ_DIR, "-j2", "--target", target], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(FUZZ_DIR, target)


@pytest.mark.parametrize("name", ["userlist", "scram", "admin"])
def test_parser_survives_a_short_fuzzing_run(name, tmp_path):
    binary = build(f"{name}_fuzz")
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(REPO, "daemon", "fuzz", "corpus", name), corpus)
    out = subprocess.run([binary, "-max_total_time=8", "-max_len=2048", "-timeout=5", "-rss_limit_mb=1024",
                          f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr
