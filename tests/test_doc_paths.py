"""Every repository path that docs/*.md or a code comment names exists (a renamed or
deleted file leaves no stale pointer behind). Paths are taken relative to the repository,
daemon/src/, daemon/, extension/, common/ or tests/; `{a,b}` alternatives are expanded."""
import glob
import itertools
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BASES = ["", "daemon/src", "daemon", "extension", "common", "tests", "docs"]
SEGMENT = r"(?:[\w.*-]|\{[\w.,*-]+\})+"
PATH = re.compile(rf"(?<![\w./-])({SEGMENT}(?:/{SEGMENT})+/?)")
TOP = ("daemon/", "extension/", "common/", "tests/", "docs/", "bench/", "packaging/", "scripts/", "sql/",
       "expected/", "isolation/", "control/")
FILE = re.compile(r"\.(h|hpp|cpp|md|py|sql|sh|spec|ini|service|control|out|js)$")


def expand(path):
    parts = re.split(r"(\{[^}]*\})", path)
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(c) for c in itertools.product(*choices)]


def named_paths(text):
    for m in PATH.finditer(text):
        p = m.group(1).rstrip(".")
        if "://" in text[m.start():m.end() + 3] or p.startswith(("http", "/")):
            continue
        if p.startswith("bench/results/"):  # written by the benchmarks, not in the repository
            continue
        if p.startswith(TOP) or FILE.search(expand(p)[0]):
            yield p


def exists(p):
    return all(any(glob.glob(os.path.join(REPO, b, q)) for b in BASES) for q in expand(p))


def sources():
    for f in glob.glob(os.path.join(REPO, "docs", "*.md")):
        yield f, open(f).read()
    for pattern in ("daemon/src/**/*.[ch]*", "daemon/tests/*.cpp", "extension/*.[ch]*", "common/**/*.[ch]*",
                    "tests/*.py"):
        for f in glob.glob(os.path.join(REPO, pattern), recursive=True):
            # Comments only: // ... in C++, # ... in Python.
            marker = "#" if f.endswith(".py") else "//"
            text = "\n".join(l.split(marker, 1)[1] for l in open(f) if marker in l)
            yield f, text


# Paths in other projects (PgBouncer's, PostgreSQL's, Asio's) named for comparison.
FOREIGN = re.compile(r"^(src/|contrib/|boost/|include/|apps/|sys/|netinet/|openssl/|hiredis/|gtest/|utils/|"
                     r"storage/|access/|catalog/|commands/|executor/|nodes/|postmaster/|lib/|usr/)")


def test_every_path_named_in_docs_and_comments_exists():
    missing = []
    for f, text in sources():
        for p in named_paths(text):
            if FOREIGN.match(p) or exists(p):
                continue
            missing.append(f"{os.path.relpath(f, REPO)}: {p}")
    assert not missing, "paths that do not exist:\n" + "\n".join(sorted(set(missing)))
