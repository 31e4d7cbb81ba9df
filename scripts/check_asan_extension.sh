#!/usr/bin/env bash
# The extension under AddressSanitizer and UndefinedBehaviorSanitizer: built with
# -fsanitize=address,undefined into a private copy of PostgreSQL 15 (build/asan-ext/pg, a
# relocated copy of /usr/lib/postgresql/15 and /usr/share/postgresql/15, so nothing is
# installed globally and no other build is touched), then its pg_regress and isolation tests
# run against a temporary instance of that copy, as scripts/check.sh runs them: with and
# without shared_preload_libraries = pgcohere. Any sanitizer report fails the run.
#
# The sanitizer runtime is loaded with pgcohere.so, not preloaded: Debian's PostgreSQL
# binaries hang at startup with libasan in LD_PRELOAD (glibc's locale lock, taken in
# p11-kit's constructor, which they pull in through libldap and gnutls; `postgres -V` alone
# hangs). Loaded late, ASan checks every stack and global access of the extension's code and
# UBSan all its undefined behaviour; heap allocations still go to glibc's malloc (PostgreSQL
# resolved it first), so heap overflows are not caught, and palloc memory never is.
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
# The runtimes' options are compiled in: a backend cannot read them from its environment,
# because PostgreSQL's process titles overwrite the memory of /proc/self/environ, where the
# runtime, loaded late, looks. detect_leaks=0: PostgreSQL frees memory contexts by exiting,
# which LeakSanitizer would report in every backend. verify_asan_link_order=0: the runtime
# comes with pgcohere.so, after libc.
cat > "$out/extension/sanitizer_options.cpp" <<EOC
extern "C" const char* __asan_default_options() {
  return "log_path=$reports/asan:detect_leaks=0:halt_on_error=1:verify_asan_link_order=0";
}
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
  if ! "${runas[@]}" \
      make -s -C "$out/extension" installcheck \
      EXTRA_REGRESS_OPTS="--bindir=$pg/usr/lib/postgresql/15/bin --temp-instance=$out/extension/tmp_check --temp-config=$out/temp.conf"; then
    cat "$out/extension/regression.diffs" "$out/extension/output_iso/regression.diffs" 2>/dev/null || true
    status=1
  fi
done
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports (extension):"
  for f in "$reports"/*; do echo "--- $f"; head -60 "$f"; done
  exit 1
fi
exit $status
