# pgcohere: the one entry point.
#   make               build the extension (PGXS, extension/Makefile) and the daemon (CMake)
#   make install       install both (extension into PostgreSQL 15, pgcohered into $(PREFIX)/bin)
#   make installcheck  extension regression + isolation tests against PGHOST/PGPORT/PGUSER
#   make check         everything: deps, build, private servers, unit + regress + isolation + e2e
#   make run           the sandbox: private PostgreSQL + Redis + pgcohered on loopback
#   make bench         the benchmarks under bench/
PG_CONFIG ?= pg_config
PREFIX ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo
DAEMON_BUILD := build/daemon
JOBS ?= 2

.PHONY: all extension daemon install install-extension install-daemon installcheck \
        unit check run bench clean

all: extension daemon

extension:
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG)

$(DAEMON_BUILD)/CMakeCache.txt:
	cmake -S daemon -B $(DAEMON_BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

daemon: $(DAEMON_BUILD)/CMakeCache.txt
	cmake --build $(DAEMON_BUILD) -j$(JOBS)

install: install-extension install-daemon

install-extension: extension
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG) install

install-daemon: daemon
	install -D -m 0755 $(DAEMON_BUILD)/pgcohered $(DESTDIR)$(PREFIX)/bin/pgcohered

installcheck:
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG) installcheck

unit: daemon
	cd $(DAEMON_BUILD) && ctest --output-on-failure

check:
	scripts/check.sh

run:
	scripts/sandbox.sh

bench:
	SUITES="$(SUITES)" bench/run.sh

clean:
	$(MAKE) -C extension clean
	rm -rf build
