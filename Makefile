# Floodgate. `make run` starts the daemon on the quickstart config;
# `make test` installs what the tests need and runs every test.

GO      ?= go
BIN     := bin/floodgate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export PATH := $(PATH):/usr/local/go/bin

# Debian packages the integration tests use (command:package).
TEST_TOOLS := gobgpd:gobgpd gobgp:gobgpd ip:iproute2 tmux:tmux tcpreplay:tcpreplay sysctl:procps vtysh:frr bird:bird2 birdc:bird2 exabgp:exabgp nft:nftables kcat:kcat

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build run check test test-deps lint unit fuzz bench bench-e2e soak chaos install clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/floodgate

run: build
	$(BIN) run --config examples/quickstart

check: build
	$(BIN) check --config examples/quickstart

# Installs only what is missing (needs root on a fresh machine).
test-deps:
	@missing=""; for t in $(TEST_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Unit and integration tests (fuzz targets run on their seed corpus).
# FLOODGATE_INTEGRATION=1 turns a missing prerequisite into a failure.
test: test-deps lint
	FLOODGATE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 20m ./...

# Unit tests only.
unit:
	$(GO) test -short -count=1 ./...

FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench.txt
	FLOODGATE_BENCH_CLUSTER=1 $(GO) test -run '^$$' -bench ClusterThroughput -benchtime 2000000x -count 6 ./integration/ | tee -a bench.txt

# Installs the binary, the systemd unit and, if none exists, a starting
# configuration; creates the floodgate system user when run as root on the
# real system (DESTDIR empty).
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/floodgate
	install -D -m 0644 examples/systemd/floodgate.service $(DESTDIR)/etc/systemd/system/floodgate.service
	@if [ ! -e $(DESTDIR)/etc/floodgate/floodgate.hcl ]; then \
	  install -D -m 0640 examples/systemd/floodgate.hcl $(DESTDIR)/etc/floodgate/floodgate.hcl; \
	else echo "keeping the existing $(DESTDIR)/etc/floodgate/floodgate.hcl"; fi
	install -d -m 0750 $(DESTDIR)/var/lib/floodgate
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! id floodgate >/dev/null 2>&1; then \
	  useradd --system --home-dir /var/lib/floodgate --shell /usr/sbin/nologin floodgate; \
	  chown floodgate:floodgate /var/lib/floodgate; chgrp floodgate /etc/floodgate/floodgate.hcl; \
	fi

# Attack to route in a router's RIB, for sFlow, NetFlow v9 and the mirror
# port, in network namespaces (root): median and max over repeated runs.
bench-e2e: test-deps
	FLOODGATE_BENCH_E2E=1 FLOODGATE_INTEGRATION=1 $(GO) test -count=1 -timeout 60m -run '^TestE2ELatency$$' -v ./integration/ | grep -v '^=== '

# The detection soak: 10 simulated minutes of every benign traffic shape
# (flash crowd, large download, bursts, 60-s records) through every input's
# real decoder, the same shapes for 10 real minutes through every flow
# input into a floodgate process peering with gobgpd, and 1,000 host-hours
# of a host at 0.8× its limit through 1:1000 samples; no attack may start.
# make test runs a shorter form.
SOAK ?= 10m
HOST_HOURS ?= 1000
soak: test-deps
	FLOODGATE_SOAK=$(SOAK) FLOODGATE_INTEGRATION=1 $(GO) test -count=1 -timeout 60m -run '^(TestPipeline|TestBenignEveryInput$$)' -v ./integration/
	FLOODGATE_HOST_HOURS=$(HOST_HOURS) $(GO) test -count=1 -timeout 60m -run '^TestSampledEstimateNeedsConfidence$$' -v ./detect/

# The chaos campaign: 30 attacks through sFlow and NetFlow v9 into two
# redundant speakers peering with FRR, BIRD and gobgpd, while floodgate
# processes are killed and routers restarted at random moments (root).
# make test runs a shorter one. CHAOS_SEED=n replays a campaign.
chaos: test-deps
	FLOODGATE_CHAOS=full FLOODGATE_CHAOS_SEED=$(CHAOS_SEED) FLOODGATE_INTEGRATION=1 $(GO) test -count=1 -timeout 30m -run '^TestChaos$$' -v ./integration/ | grep -v '^=== '

clean:
	rm -rf bin bench.txt
