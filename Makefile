# Signet: the README names `make demo` and `make test`. Every target installs
# what it needs or says what is missing.

SHELL := /bin/bash
CARGO ?= cargo

# Debian packages the workspace builds and tests against (GStreamer 1.22 on
# bookworm; mosquitto for the external-broker tests; gstreamer1.0-x has the
# text and clock overlays of template zones, only recommended by -good; Xvfb
# for the player's X sink test; systemd for systemd-analyze, which checks the
# units).
DEB_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-x gstreamer1.0-tools \
	mosquitto xvfb systemd

# Crates signet-common must never depend on (it is the pure core).
IMPURE_CRATES := tokio sled reqwest rumqttc rumqttd gstreamer axum notify

# Where cargo puts binaries (honours CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: demo test deps fmt-check clippy unit purity bench units-check deb deb-check

test: deps fmt-check clippy purity unit units-check

# The one-command demo (O2): a hub with its embedded broker on a temporary
# data dir, sample content, three headless agents and a live status until
# Ctrl-C. A debug build on purpose: on a 2-core machine it compiles in far
# less time than a release build (no optimizer passes, more parallel codegen
# units), and the demo does not need optimized Rust — the heavy work (video
# decoding, compositing) is GStreamer's C code, and the hashing crates are
# optimized even in dev builds (see Cargo.toml).
demo: deps
	$(CARGO) build --bins --locked
	$(TARGET_DIR)/debug/signet-hub demo

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing"; \
			echo "install them with: sudo apt-get install$$missing"; \
			exit 1; \
		fi; \
	fi
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

# The end-to-end tests in tests/ run the real binaries: build them first.
unit:
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --locked

bench: deps
	$(CARGO) bench -p signet-common --bench envelope
	$(CARGO) bench -p signet-agent --bench player_resources

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

deb: deps
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
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
