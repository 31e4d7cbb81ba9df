"""Short, bounded libFuzzer runs of every parser of untrusted bytes (daemon/fuzz/*_fuzz.cpp):
the PostgreSQL wire codec, the NOTIFY payload decoder, the auth_file and auth_hba_file parsers, SCRAM, the
admin console and the query cache's SQL analysis; and of the properties of the wire contract
shared with the extension (contract: payload round trips, escaping never widens a glob). Built with clang-14 into build/fuzz; a crash, sanitizer report or leak
fails the test. PGC_FUZZ_SECONDS sets the time per target. Each run starts from the corpus kept in daemon/fuzz/corpus/<target>/,
which `make fuzz-budget` grows (longer runs: docs/reliability.md, "Fuzzing")."""
import os
import shutil
import subprocess

import pytest

from harness.servers import REPO

FUZZ_DIR = os.path.join(REPO, "build", "fuzz")
# target -> libFuzzer -max_len (the largest input worth mutating for that parser)
TARGETS = {"pg_protocol": 65536, "notify_payload": 9000, "userlist": 2048, "hba": 2048, "scram": 2048, "admin": 2048,
           "cache_query": 4096, "contract": 4096}


@pytest.fixture(scope="module")
def fuzz_build():
    if not shutil.which("clang++-14"):
        pytest.skip("clang++-14 is not installed")
    subprocess.run(["cmake", "-S", os.path.join(REPO, "daemon"), "-B", FUZZ_DIR, "-DPGCOHERE_FUZZ=ON",
                    "-DCMAKE_CXX_COMPILER=clang++-14", "-DCMAKE_C_COMPILER=clang-14",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", FUZZ_DIR, "-j2", "--target", *[f"{t}_fuzz" for t in TARGETS]],
                   check=True, stdout=subprocess.DEVNULL)
    return FUZZ_DIR


def test_every_fuzz_target_is_run():
    sources = {f[:-len("_fuzz.cpp")] for f in os.listdir(os.path.join(REPO, "daemon", "fuzz")) if f.endswith("_fuzz.cpp")}
    assert sources == set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_survives_a_short_fuzzing_run(name, fuzz_build, tmp_path):
    corpus = tmp_path / "corpus"
    seeds = os.path.join(REPO, "daemon", "fuzz", "corpus", name)
    if os.path.isdir(seeds):
        shutil.copytree(seeds, corpus)
    else:
        corpus.mkdir()
    seconds = os.environ.get("PGC_FUZZ_SECONDS", "8")
    out = subprocess.run([os.path.join(fuzz_build, f"{name}_fuzz"), f"-max_total_time={seconds}",
                          f"-max_len={TARGETS[name]}", "-timeout=5", "-rss_limit_mb=1024",
                          f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr
