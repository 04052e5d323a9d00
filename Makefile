# Entry points for people and CI.  `make lab-demo` and `make test` are the two main commands
# (see README.md).  The lab targets boot qemu VMs (tests/lab/); they install what they need.

CARGO   ?= cargo
DESTDIR ?=
PREFIX  ?= /usr
SBINDIR ?= $(PREFIX)/sbin
# Debian 12 keeps units under /lib (not merged into /usr for dpkg)
UNITDIR ?= /lib/systemd/system
UNITS   := systemd/multipathd.service systemd/multipathd.socket
# man pages, if the tree has them: man/*.5 (multipath.conf) and man/*.8 (multipathd)
MAN5 := $(wildcard man/*.5)
MAN8 := $(wildcard man/*.8)

.PHONY: build test lint lab-test lab-demo lab-bench install install-files deb bench fuzz upstream

build:
	$(CARGO) build --bins --examples

# The whole suite: unit, integration (the lab VMs included), doc, example and bench targets.
test:
	$(CARGO) test --all-targets

# Upstream multipath-tools 0.14.3, the oracle of tests/config_oracle.rs: built from the release
# tarball in ../shared/reference/upstream (its build.sh installs the -dev packages it needs with
# apt-get; about 30 s) into target/upstream/, once.  Without the tarball the oracle tests skip.
UPSTREAM_REF ?= ../shared/reference/upstream
upstream:
	@if [ -x target/upstream/bin/multipath ]; then echo "upstream: $$(cat target/upstream/VERSION) already in target/upstream"; \
	elif [ -f $(UPSTREAM_REF)/build.sh ]; then bash $(UPSTREAM_REF)/build.sh target/upstream; \
	else echo "upstream: $(UPSTREAM_REF)/build.sh not found: the oracle tests will say they skipped"; fi

# The gates CI runs before the tests: formatting (rustfmt.toml) and clippy with warnings as
# errors (the lint levels are in Cargo.toml's [lints]).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Only the lab: every tests/lab/scenarios/*.sh in a VM, plus the harness self-test.
lab-test:
	$(CARGO) test --test lab -- --nocapture

# The main job: boot the lab VM and tell the marginal-path story with its full output
# (sets up the lab on first use; about 7 minutes, most of it the 2 x 120 s IO-error samples).
lab-demo: build
	LAB_NO_BUILD=1 LAB_VERBOSE=1 tests/lab/run.sh marginal

install:
	$(CARGO) build --release --bins
	$(MAKE) install-files BIN=target/release/multipathd

# Everything but the build: the binary BIN, the systemd units (their ExecStart= and
# ExecReload= pointing at SBINDIR) and the man pages.  tests/systemd_units.rs uses it.
BIN ?= target/release/multipathd
install-files:
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/multipathd
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed 's|/sbin/multipathd|$(SBINDIR)/multipathd|g' $$u > $(DESTDIR)$(UNITDIR)/$${u#systemd/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/} || exit 1; \
	done
	$(if $(MAN5),install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/man/man5 $(MAN5))
	$(if $(MAN8),install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/man/man8 $(MAN8))

# A .deb that installs our daemon beside Debian's multipath-tools, diverting its
# /sbin/multipathd, units and man pages (README: "Replacing Debian's multipathd").
deb:
	$(CARGO) build --release --bins
	packaging/build-deb.sh target/release/multipathd target/deb

bench:
	$(CARGO) bench

# Bounded property-based fuzzing of every parser (config, CLI, uevent, DM table/status), and
# differential fuzzing of the configuration against upstream's `multipath -t` (fuzz_config_oracle:
# needs root and `make upstream`, else it says it skipped).
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} LAB=0 $(CARGO) test --release --test 'fuzz_*' -- --nocapture

# The lab benchmark against Debian's multipathd (tests/lab/bench/lab_bench.sh): every run is one
# daemon in a fresh VM (release build of ours), in ABBA order, BENCH_RUNS runs each (default 5),
# on BENCH_SCALE paths (256, 1024 or 4096; default 256).  The table goes to
# target/lab/results/lab-bench-<paths>/table.md and into benches/README.md.
lab-bench:
	$(CARGO) build --release --bins --examples
	tests/lab/bench/lab_bench.sh
