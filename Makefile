# pgcohere: the one entry point.
#   make               build the extension (PGXS, extension/Makefile) and the daemon (CMake)
#   make install       install both (extension into PostgreSQL 15, pgcohered into $(PREFIX)/bin)
#                      and, under $(PREFIX)/share/pgcohere, the systemd unit, the example ini,
#                      the alert rules, the Grafana dashboard and the docs
#   make uninstall     remove what make install put there
#   make installcheck  extension regression + isolation tests against PGHOST/PGPORT/PGUSER
#   make check         everything: deps, build, private servers, unit + regress + isolation + e2e
#   make check-asan    ASan + UBSan: the daemon (unit tests, e2e suite) and the extension (regress, isolation)
#   make check-all     make check, then make check-asan (not run by CI: too long)
#   make fuzz-budget   each libFuzzer target for 10 M executions, one at a time; the corpus is
#                      merged into daemon/fuzz/corpus/ (TARGETS="admin hba" for some of them)
#   make run           the sandbox: private PostgreSQL + Redis + pgcohered on loopback
#   make bench         the benchmarks under bench/
#   make bench-report  all of them at a size that fits ~20 min -> docs/benchmarks.md + plots
PG_CONFIG ?= pg_config
PREFIX ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo
DAEMON_BUILD := build/daemon
SHARE_DIR = $(PREFIX)/share/pgcohere
# What install-share copies: source -> path under $(SHARE_DIR) (the unit gets its paths
# rewritten for $(PREFIX) on the way).
SHARE_FILES := packaging/pgcohered.ini:pgcohered.ini \
  packaging/prometheus/pgcohere-rules.yml:prometheus/pgcohere-rules.yml \
  packaging/prometheus/pgcohere-rules.test.yml:prometheus/pgcohere-rules.test.yml \
  packaging/grafana/pgcohere-dashboard.json:grafana/pgcohere-dashboard.json \
  README.md:docs/README.md $(foreach f,$(wildcard docs/*.md),$(f):docs/$(notdir $(f)))
JOBS ?= 2

.PHONY: all extension daemon install install-extension install-daemon install-share installcheck \
        uninstall uninstall-extension uninstall-daemon unit check check-asan check-all fuzz-budget run bench bench-report \
        clean

all: extension daemon

extension:
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG)

$(DAEMON_BUILD)/CMakeCache.txt:
	cmake -S daemon -B $(DAEMON_BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

daemon: $(DAEMON_BUILD)/CMakeCache.txt
	cmake --build $(DAEMON_BUILD) -j$(JOBS)

install: install-extension install-daemon install-share

install-extension: extension
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG) install

install-daemon: daemon
	install -D -m 0755 $(DAEMON_BUILD)/pgcohered $(DESTDIR)$(PREFIX)/bin/pgcohered
	install -D -m 0755 $(DAEMON_BUILD)/pgcohere_cache_explain $(DESTDIR)$(PREFIX)/bin/pgcohere_cache_explain

install-share:
	install -d -m 0755 $(DESTDIR)$(SHARE_DIR)/systemd
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/usr/local/share/pgcohere/|$(SHARE_DIR)/|g' \
	  packaging/systemd/pgcohered.service > $(DESTDIR)$(SHARE_DIR)/systemd/pgcohered.service
	chmod 0644 $(DESTDIR)$(SHARE_DIR)/systemd/pgcohered.service
	$(foreach f,$(SHARE_FILES),install -D -m 0644 $(word 1,$(subst :, ,$(f))) $(DESTDIR)$(SHARE_DIR)/$(word 2,$(subst :, ,$(f)));)

uninstall: uninstall-extension uninstall-daemon

uninstall-extension:
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG) uninstall

# Only the files install-daemon and install-share wrote; a directory is removed when it
# is left empty (anything an operator added stays).
uninstall-daemon:
	rm -f $(DESTDIR)$(PREFIX)/bin/pgcohered $(DESTDIR)$(PREFIX)/bin/pgcohere_cache_explain
	rm -f $(DESTDIR)$(SHARE_DIR)/systemd/pgcohered.service \
	  $(foreach f,$(SHARE_FILES),$(DESTDIR)$(SHARE_DIR)/$(word 2,$(subst :, ,$(f))))
	for d in $(addprefix $(DESTDIR)$(SHARE_DIR)/,systemd prometheus grafana docs) $(DESTDIR)$(SHARE_DIR); do \
	  if [ -d "$$d" ]; then rmdir --ignore-fail-on-non-empty "$$d"; fi; \
	done

installcheck:
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG) installcheck

unit: daemon
	cd $(DAEMON_BUILD) && ctest --output-on-failure

check:
	scripts/check.sh

check-asan:
	scripts/check_asan.sh

# Too long for CI's 90 minutes beside `make check` (docs/reliability.md, "Sanitizers").
check-all: check check-asan

# Hours of CPU on 2 cores; CI runs each target for seconds (tests/test_fuzz.py).
fuzz-budget:
	scripts/fuzz_budget.sh $(TARGETS)

run:
	scripts/sandbox.sh

bench:
	SUITES="$(SUITES)" bench/run.sh

bench-report:
	bench/report/run.sh

clean:
	$(MAKE) -C extension clean
	rm -rf build
