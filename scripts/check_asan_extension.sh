#!/usr/bin/env bash
# The extension under AddressSanitizer and UndefinedBehaviorSanitizer: built with
# -fsanitize=address,undefined into a private copy of PostgreSQL 15 (build/asan-ext/pg, a
# relocated copy of /usr/lib/postgresql/15 and /usr/share/postgresql/15, so nothing is
# installed globally and no other build is touched), then its pg_regress and isolation tests
# run against a temporary instance of that copy, as scripts/check.sh runs them: with and
# without shared_preload_libraries = pgcohere. Any sanitizer report fails the run.
#
# PostgreSQL runs with the ASan runtime preloaded, so every malloc and new of the extension's
# C++ code goes through ASan's allocator (heap overflows, use after free, double free), and
# ASan checks every stack and global access of its code, UBSan all its undefined behaviour.
# palloc memory is PostgreSQL's own (blocks carved from malloc'd chunks), which ASan does not
# see. PostgreSQL itself is not instrumented: its heap calls are checked, its accesses are not.
#
# Preloading needs one repair. A preloaded library's constructor runs after those of the
# libraries the program needs, so the runtime initializes on the first malloc instead, and
# in Debian's PostgreSQL binaries that malloc comes from a constructor holding one of glibc's
# locale locks (libgpg-error's bindtextdomain() in postgres, p11-kit's newlocale() in initdb,
# both pulled in through libsystemd, libldap and gnutls). The runtime's initialization then
# calls dlerror(), which takes that lock again, and the process hangs (`postgres -V` alone
# does). So every library those binaries load gets a copy that needs libasan, found first
# through LD_LIBRARY_PATH: the runtime becomes a dependency of each of them, and the loader
# initializes it before any of their constructors.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/build/asan-ext
pg=$out/pg

rm -rf "$out" && mkdir -p "$out" "$pg/usr/lib/postgresql" "$pg/usr/share/postgresql"
# PostgreSQL finds its share and lib directories relative to its binary, so a copy under
# another prefix is self-contained.
cp -a /usr/lib/postgresql/15 "$pg/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$pg/usr/share/postgresql/"
# The extension's sources with the layout its Makefile expects (../common, ../sql, ...).
for d in extension common sql expected isolation control; do cp -a "$repo/$d" "$out/"; done
make -s -C "$out/extension" clean >/dev/null
reports=$out/reports
# UBSan's options are compiled in: its runtime is loaded with pgcohere.so, and a backend cannot
# give it its environment, because PostgreSQL's process titles overwrite the memory of
# /proc/self/environ, where a runtime loaded late looks. ASan's come from ASAN_OPTIONS below
# (its runtime starts with the postmaster, before any title is set).
cat > "$out/extension/sanitizer_options.cpp" <<EOC
extern "C" const char* __ubsan_default_options() {
  return "log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1";
}
EOC
# PG_CXXFLAGS/SHLIB_LINK are read before PGXS is included: append them above that line.
sed -i 's/^override with_llvm = no$/OBJS += sanitizer_options.o\nPG_CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer\nSHLIB_LINK += -fsanitize=address,undefined\n&/' \
  "$out/extension/Makefile"
echo "== extension built with -fsanitize=address,undefined"
cxx=()
if command -v ccache >/dev/null; then cxx=(CXX="ccache g++"); fi
make -s -C "$out/extension" -j"${JOBS:-2}" "${cxx[@]}"
make -s -C "$out/extension" install DESTDIR="$pg" >/dev/null
# Checked on captured text: `cmd | grep -q` fails under pipefail when grep stops reading early.
so=$pg/usr/lib/postgresql/15/lib/pgcohere.so
libs=$(ldd "$so") symbols=$(nm -D "$so")
[[ $libs == *libasan* && $libs == *libubsan* ]] || { echo "pgcohere.so is not linked with ASan and UBSan" >&2; exit 1; }
[[ $symbols == *__asan_report_load* ]] || { echo "pgcohere.so has no ASan checks" >&2; exit 1; }

mkdir -p "$reports"
# The ASan runtime for PostgreSQL's processes, and the libgpg-error copy that makes it start
# first (see the top of this file).
asan_runtime=$(readlink -f "$(gcc -print-file-name=libasan.so)")
first=$out/asan-first
mkdir -p "$first"
# The libraries of every PostgreSQL program, less the runtime's own (libc, libm, libgcc_s).
runtime_libs=$(ldd "$asan_runtime" | awk '$3 ~ /^\// {print $3}')
for lib in $(ldd "$pg"/usr/lib/postgresql/15/bin/* 2>/dev/null | awk '$3 ~ /^\// {print $3}' | sort -u); do
  grep -qxF "$lib" <<<"$runtime_libs" && continue
  cp "$lib" "$first/"
  patchelf --add-needed "$(basename "$asan_runtime")" "$first/$(basename "$lib")"
done
# detect_leaks=0: PostgreSQL frees memory contexts by exiting, which LeakSanitizer would
# report in every backend.
asan_env=(LD_PRELOAD="$asan_runtime" LD_LIBRARY_PATH="$first:$(dirname "$asan_runtime")"
          ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=0:halt_on_error=1")
for program in postgres initdb psql; do
  if ! version=$(env "${asan_env[@]}" timeout 30 "$pg/usr/lib/postgresql/15/bin/$program" -V); then
    echo "$program does not start with the ASan runtime preloaded (hung or failed; see the top of $0)" >&2
    exit 1
  fi
done
echo "== $version, PostgreSQL's programs with the ASan runtime preloaded"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/secret"
chmod 600 "$out/secret"
runas=()
if [[ $(id -u) -eq 0 ]]; then
  chown -R postgres "$out"
  runas=(runuser -u postgres --)
fi
status=0
for preload in pgcohere ''; do
  echo "-- pg_regress + isolation under ASan + UBSan, shared_preload_libraries = '$preload'"
  printf "shared_preload_libraries = '%s'\npgcohere.secret_file = '%s'\n" "$preload" "$out/secret" > "$out/temp.conf"
  rm -rf "$out/extension/tmp_check"
  if ! "${runas[@]}" env "${asan_env[@]}" \
      make -s -C "$out/extension" installcheck \
      EXTRA_REGRESS_OPTS="--bindir=$pg/usr/lib/postgresql/15/bin --temp-instance=$out/extension/tmp_check --temp-config=$out/temp.conf"; then
    cat "$out/extension/regression.diffs" "$out/extension/output_iso/regression.diffs" 2>/dev/null || true
    status=1
  fi
  # A runtime may also write its report to the server's log (UBSan does, whatever its
  # log_path): pg_regress keeps that log when a test failed.
  for log in "$out/extension/log/postmaster.log" "$out/extension/output_iso/log/postmaster.log"; do
    if [[ -f $log ]] && grep -qE 'runtime error:|ERROR: AddressSanitizer' "$log"; then
      cp "$log" "$reports/postmaster-${preload:-not-preloaded}-$(basename "$(dirname "$(dirname "$log")")").log"
    fi
  done
done
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports (extension):"
  for f in "$reports"/*; do echo "--- $f"; grep -m1 -A40 -E 'runtime error:|ERROR: AddressSanitizer' "$f" || head -60 "$f"; done
  exit 1
fi
exit $status
