# The Makefile is the CI contract: `make run` and `make test` work on a fresh
# machine with Go, gcc and git. Tools we need are built from the Go module
# proxy into a cache outside the repository.

GO            ?= go
CACHE         ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/semko
INFLUXD       := $(CACHE)/influxdb-1.8.10/bin/influxd
NATS_SERVER   := $(CACHE)/nats-server-2.15.3/bin/nats-server
STATICCHECK   := $(CACHE)/bin/staticcheck
STATICCHECK_VERSION := v0.8.2
FUZZTIME      ?= 10s
TEST_TIMEOUT  ?= 20m
BENCHTIME     ?= 1s

export SEMKO_INFLUXD := $(INFLUXD)
export SEMKO_NATS_SERVER := $(NATS_SERVER)

.PHONY: all build run cluster grafana test lint vet fmt-check staticcheck fuzz bench bench-quick tidy influxd nats-server chromium postgresql clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# The whole system on embedded defaults: local InfluxDB 1.8.10 on :8086,
# backend with the embedded broker (MQTT :1883, HTTP :8080), simulated fleet.
run: influxd build
	./bin/semko-dev

# The clustered deployment on this machine (deploy/cluster): three NATS
# nodes, two backend replicas, InfluxDB and a fleet spread over the nodes.
cluster: influxd nats-server build
	./bin/semko-cluster

# Grafana on 127.0.0.1:3000 with Semko's datasource and dashboards, when
# grafana-server (or grafana) is installed; otherwise it says how to get it.
grafana:
	./grafana/run.sh

# InfluxDB 1.8.10, built once from the module proxy and cached.
influxd: $(INFLUXD)
$(INFLUXD):
	@echo "building InfluxDB 1.8.10 from the Go module proxy (once, about two minutes)..."
	@mkdir -p $(dir $(INFLUXD))
	@# Built under a temporary name and renamed, so an interrupted build never
	@# leaves a broken binary behind.
	d=$$(mktemp -d) && cd $$d && GOBIN=$$d/bin GOFLAGS=-mod=mod GOWORK=off $(GO) install github.com/influxdata/influxdb/cmd/influxd@v1.8.10 \
		&& mv $$d/bin/influxd $(INFLUXD).tmp && mv $(INFLUXD).tmp $(INFLUXD) && rm -rf $$d

# nats-server 2.15.3 for the clustered front door's tests (deploy/cluster),
# built like InfluxDB: once, from the module proxy, renamed into place.
nats-server: $(NATS_SERVER)
$(NATS_SERVER):
	@echo "building nats-server 2.15.3 from the Go module proxy (once)..."
	@mkdir -p $(dir $(NATS_SERVER))
	d=$$(mktemp -d) && cd $$d && GOBIN=$$d/bin GOFLAGS=-mod=mod GOWORK=off $(GO) install github.com/nats-io/nats-server/v2@v2.15.3 \
		&& mv $$d/bin/nats-server $(NATS_SERVER).tmp && mv $(NATS_SERVER).tmp $(NATS_SERVER) && rm -rf $$d

test: influxd nats-server chromium postgresql vet fmt-check
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# Headless Chromium for the console's browser journeys (backend/console_browser_test.go),
# and poppler-utils (pdftotext, pdftoppm) with which the report tests read their PDFs.
# Installed with apt when running as root where apt exists, as CI does;
# otherwise it says what to install. Without it the journeys skip, unless
# CI=true, where they fail.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || [ -n "$$SEMKO_CHROMIUM" ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Chromium for the browser tests (apt-get install -y chromium)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium is missing: the console's browser tests will be skipped."; \
		echo "Install Debian's chromium package (sudo apt-get install -y chromium) or set SEMKO_CHROMIUM to a Chrome/Chromium binary."; \
	fi
	@if command -v pdftotext >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing poppler-utils for the report tests (pdftotext, pdftoppm)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils; \
	else \
		echo "pdftotext/pdftoppm are missing: the report tests fail without them."; \
		echo "Install Debian's poppler-utils package (sudo apt-get install -y poppler-utils)."; \
	fi

# Debian's PostgreSQL server binaries for the shared-state tests (internal/pglocal
# runs its own server from them in a temporary directory; a cluster the package
# may start is not used). Installed with apt as root, as CI does; without them
# those tests skip, unless CI=true, where they fail.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "$$SEMKO_PG_BIN" ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing PostgreSQL for the shared-state tests (apt-get install -y postgresql)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "PostgreSQL is missing: the shared-state tests will be skipped."; \
		echo "Install Debian's postgresql package (sudo apt-get install -y postgresql) or set SEMKO_PG_BIN to the directory holding initdb and postgres."; \
	fi

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: vet fmt-check staticcheck

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
$(STATICCHECK):
	@mkdir -p $(dir $(STATICCHECK))
	d=$$(mktemp -d) && cd $$d && GOBIN=$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Every fuzz target, each for FUZZTIME (go test -fuzz takes one target of one
# package at a time). FUZZTIME is a duration or a count of executions
# ("10000x"). CI uses a count: with a duration, Go 1.26's fuzz coordinator
# can fail a target with a bare "context deadline exceeded" as the time runs
# out on a loaded machine, with no failing input (golang/go#75804, fixed in
# Go 1.27); a count has no deadline to race.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Go benchmarks of the hot paths, then the fleet benchmark (issue 7's six
# targets against the real backend and InfluxDB; about 10 minutes, see
# docs/performance.md). bench-quick is the small CI variant of the latter.
bench: influxd nats-server
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	$(GO) build -o bin/ ./cmd/semko-bench
	./bin/semko-bench -log-level warn $(BENCHFLAGS)
	./bin/semko-bench longrange $(LONGRANGEFLAGS)

bench-quick: influxd nats-server
	$(GO) build -o bin/ ./cmd/semko-bench
	./bin/semko-bench -quick -log-level warn $(BENCHFLAGS)
	./bin/semko-bench longrange -quick $(LONGRANGEFLAGS)

# Fails when go.mod or go.sum are not tidy.
tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf bin var
