# Signet: the README names `make demo` and `make test`. Every target installs
# what it needs or says what is missing.

SHELL := /bin/bash
CARGO ?= cargo

# Debian packages the workspace builds and tests against (GStreamer 1.22 on
# bookworm; mosquitto for the external-broker tests; gstreamer1.0-x has the
# text and clock overlays of template zones, only recommended by -good; Xvfb
# for the player's X sink test; systemd for systemd-analyze, which checks the
# units; faketime for the trusted-clock tests; python3 and its venv for the
# OpenAPI validator and schemathesis; chromium for the console's browser
# suite, driven by playwright-core without a browser download; postgresql
# for the store's conformance suite, which runs its own server as the
# package's postgres user when the tests run as root, X4).
DEB_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad \
	gstreamer1.0-x gstreamer1.0-tools \
	mosquitto xvfb systemd faketime python3 python3-venv chromium postgresql

# Crates signet-common must never depend on (it is the pure core).
IMPURE_CRATES := tokio sled reqwest rumqttc gstreamer axum notify

# Where cargo puts binaries (honours CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: console console-check node-deps node-deps-apt unit-postgres e2e-postgres console-spec console-spec-check demo test deps fmt-check clippy unit purity bench units-check deb deb-check api-validate api-fuzz pyenv \
	fuzz fuzz-smoke cargo-afl layers bench-fleet

test: deps console console-check fmt-check clippy purity layers tls-purity unit unit-postgres e2e-postgres fuzz-smoke units-check api-validate api-fuzz console-spec-check

# The one-command demo (O2): a hub with its embedded broker on a temporary
# data dir, sample content, three headless agents and a live status until
# Ctrl-C. A debug build on purpose: on a 2-core machine it compiles in far
# less time than a release build (no optimizer passes, more parallel codegen
# units), and the demo does not need optimized Rust — the heavy work (video
# decoding, compositing) is GStreamer's C code, and the hashing crates are
# optimized even in dev builds (see Cargo.toml).
demo: deps console
	$(CARGO) build --bins --locked
	$(TARGET_DIR)/debug/signet-hub demo

# The operator console (C1, DESIGN §8): the Svelte single-page application in
# console/, built into console/dist/, which the hub embeds (release builds) or
# reads (debug builds) and serves at `/`. `npm ci` installs exactly the
# committed lockfile. The machine's Node.js and npm run it; where there is
# none, Debian's nodejs and npm are installed.
console:
	@command -v npm >/dev/null 2>&1 || $(MAKE) --no-print-directory node-deps
	cd console && npm ci && npm run build

# Node.js and npm: Debian's packages, unless a node with its own npm is
# already installed (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package).
node-deps:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		echo "node $$(node --version), npm $$(npm --version)"; \
	else \
		$(MAKE) --no-print-directory node-deps-apt; \
	fi

node-deps-apt:
	$(call apt_ensure,nodejs npm)

# The console's API types are generated from console/openapi.json, a
# committed copy of the hub's OpenAPI document (`signet-hub openapi`, C1):
# `console-spec-check` (part of `make test`) fails when the copy differs from
# what the hub serves; `console-spec` rewrites the copy (then run
# `npm run gen:api` in console/ and commit both).
CONSOLE_SPEC := console/openapi.json

console-spec:
	$(CARGO) build -p signet-hub --bin signet-hub --locked
	$(TARGET_DIR)/debug/signet-hub openapi >$(CONSOLE_SPEC).tmp && mv $(CONSOLE_SPEC).tmp $(CONSOLE_SPEC)

console-spec-check:
	$(CARGO) build -p signet-hub --bin signet-hub --locked
	@[ -f $(CONSOLE_SPEC) ] || { echo "$(CONSOLE_SPEC) is missing: make console-spec writes it"; exit 1; }
	@$(TARGET_DIR)/debug/signet-hub openapi | diff -u $(CONSOLE_SPEC) - >$(TARGET_DIR)/console-spec.diff || { \
		echo "$(CONSOLE_SPEC) differs from the hub's OpenAPI document (signet-hub openapi):"; \
		head -n 60 $(TARGET_DIR)/console-spec.diff; \
		echo "run make console-spec, then npm run check in console/, and commit"; exit 1; }
	@echo "$(CONSOLE_SPEC) matches the hub's OpenAPI document"

# The console's own checks (part of make test): eslint, svelte-check and
# tsc, Vitest, and the 350 KB gzipped JavaScript budget. Its browser suite
# runs in `unit`, as tests/tests/console.rs, against a real hub and agents.
console-check: console
	cd console && npm run lint && npm run check && npm test && npm run size

# $(call apt_ensure,PACKAGES): installs the Debian PACKAGES that are missing
# (as root; otherwise names them and fails).
define apt_ensure
	@missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
		else \
			echo "missing Debian packages:$$missing"; \
			echo "install them with: sudo apt-get install$$missing"; \
			exit 1; \
		fi; \
	fi
endef

deps:
	$(call apt_ensure,$(DEB_PACKAGES))
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy"; exit 1; }

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The acceptance check for the pure core: none of the I/O crates in its tree.
purity:
	@tree=$$($(CARGO) tree -p signet-common --edges normal --prefix none --locked) || exit 1; \
	for c in $(IMPURE_CRATES); do \
		if grep -qE "^$$c v" <<<"$$tree"; then echo "signet-common depends on $$c"; exit 1; fi; \
	done; \
	echo "signet-common is pure: none of $(IMPURE_CRATES)"
	@if grep -rnE 'Utc::now|Local::now|SystemTime|Instant::now|std::(fs|net|thread|process|env)\b' common/src; then \
		echo "signet-common must not read clocks or do I/O (see above)"; exit 1; fi

# The hub's and the agent's layers (DESIGN §9): no import cycle between
# modules, nothing outside the hub's api/ imports it, bounded file, API and
# handler sizes (tools/check_layers.py; tools/layers-known.txt lists what is
# left and may only shrink).
layers:
	python3 tools/check_layers.py

# The end-to-end tests in tests/ run the real binaries: build them first.
unit:
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --locked --exclude signet-fuzz

# The hub's HTTP scenarios once more with the store in a real PostgreSQL
# (issue 21, X4): each test's hub moves the store `init` made into its own
# database of a server the suite starts on a free loopback port
# (hub/tests/support/postgres.rs). One suite per domain the services own.
PG_SUITES := tenancy identity permission_groups access_groups approval content publish devices fleet events_sql
unit-postgres:
	SIGNET_TEST_STORE=postgres $(CARGO) test -p signet-hub --locked $(addprefix --test ,$(PG_SUITES))

# The end-to-end scenarios of tests/ that run a hub, once more with the
# hub on PostgreSQL (issue 21, X4): the real hub binary, agents and brokers
# of tests/, each hub's store moved into its own database of a server the
# suite starts (tests/src/store.rs); content stays in the hub's data dir.
# About 5.5 min on 2 cores; the build is a no-op after `unit`.
E2E_PG_SUITES := fleet_sync group_items key_rotation licences never_dark_retained proof_of_play screen \
	fleet_truth renditions never_dark_clock never_dark_update managed_broker broker_bridge fleet_sim
e2e-postgres:
	$(CARGO) build --workspace --bins --locked
	SIGNET_TEST_STORE=postgres $(CARGO) test -p signet-tests --locked $(addprefix --test ,$(E2E_PG_SUITES))

bench: deps
	$(CARGO) bench -p signet-common --bench envelope
	$(CARGO) bench -p signet-agent --bench player_resources

# Fleet scale (issue 20, X1-X3): N simulated screens (tests/src/sim) on a
# real hub, with the managed broker and with an external mosquitto; prints
# change -> applied against the limit measured in the same run, the hub's
# ingest cost and the operator API under load. Long (up to ~15 min per N
# and broker), so not part of `make test`. SIM_SCREENS is a comma list;
# SIM_BROKERS is managed,mosquitto or one of them.
SIM_SCREENS ?= 1000,10000
SIM_BROKERS ?= managed,mosquitto
bench-fleet: deps
	$(CARGO) build --workspace --bins --locked
	SIGNET_SIM_SCREENS=$(SIM_SCREENS) SIGNET_SIM_BROKERS=$(SIM_BROKERS) \
		$(CARGO) bench --profile dev --locked -p signet-tests --bench fleet_sim

# The API contract (issue 15): the OpenAPI document a real hub serves passes
# openapi-spec-validator, and schemathesis, run against that hub as its
# logged-in admin, finds no server error, no undocumented status and no
# answer outside its schema. Bounded: API_FUZZ_EXAMPLES examples per
# operation (default 3) and API_FUZZ_SECONDS for the whole run (default 120).
# The tools live in a project-local venv, pinned by
# hub/api-contract/requirements.txt (all of their dependencies too, so every
# machine gets the same), with Debian's python3.
PYTHON ?= /usr/bin/python3
PYENV := $(TARGET_DIR)/pyenv
API_REQUIREMENTS := hub/api-contract/requirements.txt

pyenv: $(PYENV)/.installed

$(PYENV)/.installed: $(API_REQUIREMENTS)
	$(call apt_ensure,python3 python3-venv)
	$(PYTHON) -m venv --clear $(PYENV)
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r $(API_REQUIREMENTS)
	@touch $@

api-validate: deps pyenv
	$(CARGO) build -p signet-hub --bin signet-hub --locked
	hub/api-contract/check.sh $(TARGET_DIR)/debug/signet-hub $(PYENV) validate

api-fuzz: deps pyenv
	$(CARGO) build -p signet-hub --bin signet-hub --locked
	hub/api-contract/check.sh $(TARGET_DIR)/debug/signet-hub $(PYENV) fuzz

# Fuzzing (issue 15; S1, S11, S13). The targets are in fuzz/src/lib.rs: the
# signed envelope, the signed documents, the device reports, the member CSV,
# the template and the schedule. `fuzz-smoke` (part of `make test`) replays
# each target's seed corpus (fuzz/corpus/<target>/) and kept regression cases
# (fuzz/regressions/<target>/) and runs FUZZ_SMOKE_RUNS seeded mutations per
# target, in the normal test build. `make fuzz` runs each target
# coverage-guided under AFL++ (cargo-afl, stable Rust) for FUZZ_SECONDS
# (default 60) in its own instrumented target dir; a crash fails the run and
# is copied to fuzz/regressions/<target>/ to be kept (commit it with the
# fix). FUZZ_TARGETS picks targets; FUZZ_OUT keeps AFL++'s queues between
# runs.
CARGO_AFL_VERSION := 0.18.2
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_RUNS ?= 3000
FUZZ_TARGETS ?= envelope group_manifest device_assignment command device_state event_batch signed_state signed_events \
	device_documents member_csv template schedule
FUZZ_OUT ?= $(TARGET_DIR)/fuzz-out
FUZZ_BIN := $(TARGET_DIR)/afl/debug/signet-fuzz-afl

fuzz-smoke:
	SIGNET_FUZZ_SMOKE_RUNS=$(FUZZ_SMOKE_RUNS) $(CARGO) test -p signet-fuzz --locked

# cargo-afl at the pinned version, and AFL++ built by it for this rustc
# (from the source shipped in the crate: make and a C compiler).
cargo-afl:
	$(call apt_ensure,make gcc)
	@$(CARGO) afl --version 2>/dev/null | grep -q '^cargo-afl $(CARGO_AFL_VERSION)' || { \
		echo "installing cargo-afl $(CARGO_AFL_VERSION)"; \
		$(CARGO) install cargo-afl --version $(CARGO_AFL_VERSION) --locked; }
	@out=$$($(CARGO) afl config --build 2>&1) || grep -q 'already built' <<<"$$out" || { echo "$$out"; exit 1; }

fuzz: cargo-afl
	CARGO_TARGET_DIR=$(TARGET_DIR)/afl $(CARGO) afl build -p signet-fuzz --features afl --bin signet-fuzz-afl --locked
	@mkdir -p $(FUZZ_OUT); failed=""; \
	for t in $(FUZZ_TARGETS); do \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
		AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1 \
		AFL_NO_AFFINITY=1 AFL_AUTORESUME=1 AFL_BENCH_UNTIL_CRASH=1 \
		$(CARGO) afl fuzz -V $(FUZZ_SECONDS) -x fuzz/dict/json.dict -i fuzz/corpus/$$t -o $(FUZZ_OUT)/$$t \
			-- $(FUZZ_BIN) $$t >$(FUZZ_OUT)/$$t.log 2>&1 || { tail -n 20 $(FUZZ_OUT)/$$t.log; failed="$$failed $$t"; continue; }; \
		grep -E 'execs_done|corpus_count|saved_crashes|saved_hangs' $(FUZZ_OUT)/$$t/default/fuzzer_stats | tr -s ' ' | paste -sd' '; \
		crashes=$$(find $(FUZZ_OUT)/$$t/default/crashes -type f -name 'id:*' 2>/dev/null); \
		if [ -n "$$crashes" ]; then \
			mkdir -p fuzz/regressions/$$t; \
			for c in $$crashes; do cp "$$c" "fuzz/regressions/$$t/crash-$$(sha256sum "$$c" | cut -c1-16)"; done; \
			echo "$$t: crashes kept in fuzz/regressions/$$t/"; failed="$$failed $$t"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing found failures in:$$failed"; exit 1; fi; \
	echo "fuzzing found no crash in: $(FUZZ_TARGETS)"

# The systemd units (O1) pass `systemd-analyze verify`, run against the
# built binaries (see packaging/units-check.sh).
units-check: deps
	$(CARGO) build --workspace --bins --locked
	packaging/units-check.sh target/debug

# Debian packages of the hub and the agent for this machine's architecture
# (amd64 here), with cargo-deb; `deb-check` inspects them (and runs lintian
# when it is installed). The cross targets package their builds with
# `cargo deb --target <triple> --no-build` from the same metadata.
DEB_FILES = $(wildcard target/debian/signet-hub_*.deb target/debian/signet-agent_*.deb)

deb: deps console cargo-deb
	@command -v lintian >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; } || \
		echo "lintian not installed (sudo apt-get install lintian): the packages are checked without it"
	rm -f target/debian/signet-hub_*.deb target/debian/signet-agent_*.deb
	$(CARGO) build --release --locked -p signet-hub -p signet-agent --bins
	$(CARGO) deb --no-build -p signet-hub
	$(CARGO) deb --no-build -p signet-agent
	$(MAKE) deb-check

deb-check:
	@debs="$(DEB_FILES)"; [ -n "$$debs" ] || { echo "no packages in target/debian: run make deb"; exit 1; }; \
	packaging/deb-check.sh $$debs

# ---------------------------------------------------------------------------
# Raspberry Pi builds (O1)
#
# Docker-less cross builds on a plain Debian bookworm machine. The host gets
# only co-installable tools from apt (the target's gcc, pkg-config,
# mmdebstrap); the target's libc and GStreamer 1.22 -dev files go into a
# private sysroot, target/sysroot-<arch>, extracted from Debian bookworm by
# mmdebstrap. The host's dpkg state is never changed: multiarch
# libgstreamer-plugins-base1.0-dev:<arch> is not co-installable with the
# host's own and would displace it. Linker, C compiler and pkg-config point
# at the sysroot from the one cargo command line, never from a global
# ~/.cargo/config (a RUSTFLAGS in the environment overrides the target's
# link flags: unset it). cross.toml is the Docker/Podman alternative
# (cross-rs) and builds its image with the same recipe.
#
#   make cross-aarch64      signet-agent for 64-bit Raspberry Pi OS (Pi 3/4/5, Zero 2)
#   make cross-aarch64-hub  signet-hub for arm64
#   make cross-armv7        signet-agent for 32-bit Raspberry Pi OS on ARMv7 (Pi 2/3/4)
#   make deb-arm64          .deb packages of the agent and the hub for arm64
#   make deb-armhf          .deb package of the agent for armhf (ARMv7)
#
# The ARMv6 Pis (Zero/Zero W/1, target arm-unknown-linux-gnueabihf) have no
# Docker-less target: Debian's armhf is ARMv7 (Thumb-2) and so is its cross
# gcc's libgcc and crt files, which end up in the binary. See cross.toml.
# ---------------------------------------------------------------------------

# Per Rust target: Debian architecture, multiarch tuple (= the gcc prefix).
DEB_ARCH_aarch64-unknown-linux-gnu := arm64
MULTIARCH_aarch64-unknown-linux-gnu := aarch64-linux-gnu
DEB_ARCH_armv7-unknown-linux-gnueabihf := armhf
MULTIARCH_armv7-unknown-linux-gnueabihf := arm-linux-gnueabihf

# Where the target sysroots come from, and what they hold.
DEBIAN_MIRROR ?= http://deb.debian.org/debian
SYSROOT_PACKAGES := libc6-dev,libgstreamer1.0-dev,libgstreamer-plugins-base1.0-dev
cross_sysroot = $(CURDIR)/target/sysroot-$(DEB_ARCH_$(1))

# Crates whose presence in a normal dependency tree means OpenSSL or aws-lc is
# linked (openssl-probe, which only looks for CA files, is pure Rust and fine).
FORBIDDEN_TLS_CRATES := openssl-sys openssl native-tls aws-lc-sys aws-lc-rs
# The targets the no-OpenSSL check looks at (cargo tree needs no target std).
TLS_CHECK_TARGETS := x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu \
	armv7-unknown-linux-gnueabihf arm-unknown-linux-gnueabihf

# $(call cross_env,TRIPLE): the environment of a cargo build for TRIPLE: the
# target's gcc as linker and C compiler (ring builds C and assembly), both on
# the sysroot, and pkg-config reading only the sysroot's .pc files.
cross_upper = $(shell echo '$(1)' | tr 'a-z-' 'A-Z_')
cross_env = CARGO_TARGET_$(call cross_upper,$(1))_LINKER=$(MULTIARCH_$(1))-gcc \
	CARGO_TARGET_$(call cross_upper,$(1))_RUSTFLAGS='-C link-arg=--sysroot=$(call cross_sysroot,$(1))' \
	CC_$(subst -,_,$(1))=$(MULTIARCH_$(1))-gcc \
	CFLAGS_$(subst -,_,$(1))=--sysroot=$(call cross_sysroot,$(1)) \
	AR_$(subst -,_,$(1))=$(MULTIARCH_$(1))-ar \
	PKG_CONFIG_ALLOW_CROSS=1 \
	PKG_CONFIG_SYSROOT_DIR=$(call cross_sysroot,$(1)) \
	PKG_CONFIG_PATH= \
	PKG_CONFIG_LIBDIR=$(call cross_sysroot,$(1))/usr/lib/$(MULTIARCH_$(1))/pkgconfig:$(call cross_sysroot,$(1))/usr/share/pkgconfig

# $(call cross_deps,TRIPLE): what a cross build for TRIPLE needs, each only
# when missing: the host tools (installed as root, named otherwise), the
# target sysroot (mmdebstrap's extract variant: it unpacks the packages and
# their dependencies and runs nothing, so no emulator and no dpkg database
# are involved), rustup's target.
define cross_deps
	$(call apt_ensure,pkg-config mmdebstrap gcc-$(MULTIARCH_$(1)))
	@sysroot='$(call cross_sysroot,$(1))'; \
	if [ ! -e "$$sysroot/usr/lib/$(MULTIARCH_$(1))/pkgconfig/gstreamer-video-1.0.pc" ]; then \
		echo "extracting the $(DEB_ARCH_$(1)) sysroot $$sysroot (Debian bookworm: $(SYSROOT_PACKAGES) and their dependencies)"; \
		rm -rf "$$sysroot" "$$sysroot.tmp" && mkdir -p "$$(dirname "$$sysroot")" && \
		mmdebstrap --quiet --mode=chrootless --variant=extract --architectures=$(DEB_ARCH_$(1)) \
			--include=$(SYSROOT_PACKAGES) bookworm "$$sysroot.tmp" "deb $(DEBIAN_MIRROR) bookworm main" && \
		mv "$$sysroot.tmp" "$$sysroot" || { rm -rf "$$sysroot.tmp"; exit 1; }; \
	fi
	@command -v rustup >/dev/null || { echo "rustup missing: the $(1) standard library comes from 'rustup target add $(1)'"; exit 1; }
	@rustup target list --installed | grep -qx '$(1)' || { echo "adding the Rust target: rustup target add $(1)"; rustup target add '$(1)'; }
endef

# $(call cross_build,TRIPLE,PACKAGE): a release build of PACKAGE for TRIPLE,
# then the no-OpenSSL check of its tree and what `file` says of the binary.
define cross_build
	$(call cross_deps,$(1))
	$(call cross_env,$(1)) $(CARGO) build --release --locked --target $(1) -p $(2)
	@$(MAKE) --no-print-directory tls-purity TLS_CHECK_TARGETS=$(1)
	@file target/$(1)/release/$(2)
endef

.PHONY: cross-aarch64 cross-aarch64-hub cross-armv7 deb-arm64 deb-armhf tls-purity cargo-deb

cross-aarch64:
	$(call cross_build,aarch64-unknown-linux-gnu,signet-agent)

cross-aarch64-hub:
	$(call cross_build,aarch64-unknown-linux-gnu,signet-hub)

cross-armv7:
	$(call cross_build,armv7-unknown-linux-gnueabihf,signet-agent)

# No OpenSSL and no aws-lc in the agent or the hub, on the host and on every Pi
# target (O1): TLS is rustls with the ring provider. Part of `make test`.
tls-purity:
	@targets="$(addprefix --target ,$(TLS_CHECK_TARGETS))"; \
	tree=$$($(CARGO) tree -p signet-agent -p signet-hub $$targets --edges normal --prefix none --locked) || exit 1; \
	for c in $(FORBIDDEN_TLS_CRATES); do \
		if grep -qE "^$$c v" <<<"$$tree"; then \
			echo "$$c is in the dependency tree of signet-agent or signet-hub; it comes from:"; \
			$(CARGO) tree -p signet-agent -p signet-hub $$targets --edges normal --locked -i $$c; \
			exit 1; \
		fi; \
	done; \
	echo "no $(FORBIDDEN_TLS_CRATES) in signet-agent or signet-hub for $(TLS_CHECK_TARGETS)"

cargo-deb:
	@$(CARGO) deb --version >/dev/null 2>&1 || { echo "installing cargo-deb: cargo install cargo-deb --locked"; $(CARGO) install cargo-deb --locked; }

# The packages take the binaries built above as they are (--no-build); the
# package metadata is [package.metadata.deb] in agent/ and hub/Cargo.toml.
# dpkg-shlibdeps cannot see the target's libraries (they are in the private
# sysroot, not installed), so `depends = "$auto"` would give an empty
# Depends silently: the metadata must name the runtime packages, and
# $(call deb_package,PACKAGE,TRIPLE) refuses a package whose Depends does not
# name GStreamer.
define deb_package
	@deb=$$($(CARGO) deb -p $(1) --target $(2) --no-build | tail -n 1) || exit 1; \
	depends=$$(dpkg-deb -f "$$deb" Depends); \
	grep -q 'libgstreamer1.0-0' <<<"$$depends" || { echo "$$deb: Depends ($$depends) does not name libgstreamer1.0-0: set depends in [package.metadata.deb] of $(1)"; rm -f "$$deb"; exit 1; }; \
	echo "$$deb ($$(dpkg-deb -f "$$deb" Architecture); Depends: $$depends)"; \
	packaging/deb-check.sh "$$deb"
endef

deb-arm64: cross-aarch64 cross-aarch64-hub cargo-deb
	$(call deb_package,signet-agent,aarch64-unknown-linux-gnu)
	$(call deb_package,signet-hub,aarch64-unknown-linux-gnu)

deb-armhf: cross-armv7 cargo-deb
	$(call deb_package,signet-agent,armv7-unknown-linux-gnueabihf)
