# Thin wrapper: meson is the source of truth for the build; this file only
# gives the usual entry points. See README.md.

BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
MESON      ?= meson

# Debian 12 packages needed to build, test and run the demo.
DEPS = meson ninja-build pkg-config g++ clang libclang-rt-14-dev \
       libuv1-dev libhttp-parser-dev libssl-dev zlib1g-dev libcmocka-dev \
       libjson-c-dev libyaml-dev libwslay-dev libmbedtls-dev busybox-static mandoc python3 hyperfine \
       iproute2 procps util-linux openssl ca-certificates curl

.PHONY: all deps check unit integration demo install clean bench bench-deps

# Bench-only Debian packages (the peers bench/ measures beside us); installed
# by `make bench-deps`, never by `make deps`.
BENCH_DEPS = crun runc openssh-server openssh-client containerd hyperfine time \
             gcc libc6-dev openssl python3 util-linux procps linux-perf
BENCH_BUILD ?= build-bench
# `make bench` runs them all; `make bench BENCH=latency` (floor, peers,
# latency, throughput, footprint, startup, concurrency) runs one.
BENCH ?=

# Distro packages (packaging/, tests/packages/): tools only `make deb` and
# `make check-packages` need, installed by `make deps-packages`, not `make deps`.
PKG_DEPS = debhelper lintian debootstrap rpm
PKG_OUT ?= build-pkg
.PHONY: deb deps-packages check-packages

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --prefix=$(PREFIX) -Dtests=false

# The sanitizer build also makes the CLI with its other TLS backend (OpenSSL),
# which tests/check.sh runs against the release daemons.
$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dcli_tls=openssl

# Idempotent: installs only what is missing, with one apt-get update.
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$(echo $$missing | tr '\n' ' ')"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "make deps: all packages present"; fi
	@tests/integration/kubectl-versions.sh --fetch >/dev/null
	@tests/integration/client-node-setup.sh --fetch >/dev/null

# Unit tests and fuzz-corpus replay under ASan+UBSan, then the integration
# tests with the real kubectl against the release build.
check: all $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	tests/check.sh $(ASAN_BUILD) $(BUILD)

unit: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	$(MESON) test -C $(ASAN_BUILD) --print-errorlogs

integration: all
	KUBEXEC_BUILD=$(BUILD) tests/integration/run.sh

demo:
	@command -v meson >/dev/null && [ -e /usr/include/uv.h ] && [ -e /bin/busybox ] || $(MAKE) deps
	$(MAKE) all
	KUBEXEC_BUILD=$(BUILD) scripts/demo.sh

install: all
	$(MESON) install -C $(BUILD)

bench-deps:
	@missing=$$(for p in $(BENCH_DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make bench-deps: installing$$(echo $$missing | tr '\n' ' ')"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "make bench-deps: all packages present"; fi

$(BENCH_BUILD)/build.ninja:
	$(MESON) setup $(BENCH_BUILD) --buildtype=release -Dtests=false

bench: $(BENCH_BUILD)/build.ninja
	ninja -C $(BENCH_BUILD)
	B=$(CURDIR)/$(BENCH_BUILD) bench/run.sh $(BENCH)

deps-packages:
	@missing=$$(for p in $(PKG_DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps-packages: installing$$(echo $$missing | tr '\n' ' ')"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "make deps-packages: all packages present"; fi

# Debian binary packages from a copy of the tree into $(PKG_OUT)/deb/ (+ lintian).
deb:
	packaging/build-deb.sh $(PKG_OUT)/deb

# make deb, install/run/upgrade/purge in a debootstrapped Debian 12, rpmbuild.
check-packages: deps-packages
	tests/packages/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
