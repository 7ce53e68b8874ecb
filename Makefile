# Switchyard — the front door. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/switchyard
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 30s
IMAGE ?= switchyard:dev
PROMETHEUS_IMAGE ?= switchyard-prometheus:dev
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
COMPOSE_PROJECT ?= switchyard-demo
# Every fuzz target, as package-dir:target.
FUZZ_TARGETS = $(shell for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go')); do \
	grep -ho '^func Fuzz[A-Za-z0-9_]*' $$f | sed "s|func |$$(dirname $$f):|"; done)

.PHONY: help deps build run test test-deploy chaos soak fuzz bench lint image prometheus-image compose-up compose-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## install what the build and tests need (Go modules; kcat, python3-kafka, python3-confluent-kafka, prometheus (promtool) and chromium via apt-get)
# (python3 runs from / so that our own kafka/ folder is not mistaken for the kafka module;
# test/compat/testdata/franzold is the older franz-go the client matrix builds)
	$(GO) mod download
	cd test/compat/testdata/franzold && GOWORK=off $(GO) mod download
	@need=(); command -v kcat >/dev/null || need+=(kcat); \
	command -v chromium >/dev/null || need+=(chromium); \
	(cd / && /usr/bin/python3 -c 'import kafka.producer') 2>/dev/null || need+=(python3-kafka); \
	(cd / && /usr/bin/python3 -c 'import confluent_kafka') 2>/dev/null || need+=(python3-confluent-kafka); \
	command -v promtool >/dev/null || need+=(prometheus); \
	if [ $${#need[@]} -gt 0 ]; then \
		echo "installing $${need[*]} with apt-get"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $${need[*]} >/dev/null; \
	fi

build: ## build bin/switchyard
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchyard

run: deps build ## start the sandbox: kfake + 3 peers on 127.0.0.1:19092-19094 (Ctrl-C stops)
	./$(BIN) dev

# The acceptance suites of live migration and offset resets (ACCEPTANCE_PKGS) run without the
# race detector, after the rest: each drives real clients at thousands of records a second
# against in-process peers and kfake, and under the detector's 5-20x CPU a two-core machine
# shared with other jobs starved them (TestMigrationAcceptance: 40 s without it, 10-25 min with
# it beside a second copy, Raft leaders lost every few seconds). The code they exercise is
# tested under the detector in ./kafka, ./node, test/e2e, test/compat and test/cluster.
ACCEPTANCE_PKGS := ./test/migration ./test/offsetreset

test: deps test-deploy ## vet, then every test (fuzz seed corpora included): with the race detector, but for the migration and offset-reset acceptance suites
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v -x -F $(foreach p,$(ACCEPTANCE_PKGS),-e github.com/switchyard-proxy/switchyard/$(patsubst ./%,%,$(p))))
	$(GO) test -count=1 -timeout 20m $(ACCEPTANCE_PKGS)

test-deploy: deps ## check deploy/prometheus (config, alert rules) and unit-test every alert with promtool
	@command -v promtool >/dev/null || { echo "promtool not found: make deps installs Debian's prometheus package"; exit 1; }
	cd deploy/prometheus && promtool check config prometheus.yml && promtool check rules switchyard-alerts.yml && \
		promtool test rules switchyard-alerts.test.yml

chaos: deps ## the fault suite (test/chaos): peers, the leader, two peers, the backend killed; a peer partitioned; rolling restart and upgrade; with the verifier's clients
	SWITCHYARD_CHAOS=1 $(GO) test -count=1 -v -timeout 25m -run '^TestFault' $(if $(CHAOS_SKIP),-skip '$(CHAOS_SKIP)') ./test/chaos/

SOAK_DURATION ?= 30m
soak: deps ## soak for SOAK_DURATION (default 30m; not in CI): the verifier's clients through three peers, each peer's RSS and Go heap sampled every 30 s; fails on memory growth after warm-up
	SWITCHYARD_SOAK=$(SOAK_DURATION) $(GO) test -count=1 -v -timeout 24h -run '^TestSoak$$' ./test/chaos/

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; done

bench: build ## proxy vs direct table, three peers in front of a 3-broker backend, 10k idle connections beside active clients, forwarding micro-benchmarks, control-plane (100 peers too) and multi-cluster figures
	$(GO) run ./test/bench -switchyard $(BIN) -out docs/benchmarks-latest.md
	$(GO) run ./test/bench -switchyard $(BIN) -scenarios floor,peers3 -rounds 4 -out docs/benchmarks-peers3-latest.md
	$(GO) run ./test/bench -switchyard $(BIN) -scenarios idle -out docs/benchmarks-idle-latest.md
	$(GO) test -run '^$$' -bench '^Benchmark(Forward|Direct)' -benchmem -count 3 ./kafka/
	$(GO) test -run '^$$' -bench IdleConns -benchtime 1x ./kafka/
	$(GO) test -run '^$$' -bench '^BenchmarkSecure' -benchtime 2000x ./kafka/
	$(GO) test -run '^$$' -bench '^BenchmarkAuthorize' -benchtime 500000x ./kafka/
	$(GO) test -run '^$$' -bench UpstreamDial -benchmem -benchtime 300x ./kafka/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/cluster/
	$(GO) test -run '^$$' -bench MergedMetadata -benchtime 20x ./test/compat/
	$(GO) test -run '^$$' -bench QuotaSim ./quota/

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

image: ## build the FROM scratch container image $(IMAGE) around a static binary
	mkdir -p build/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS) -s -w" -o build/image/switchyard ./cmd/switchyard
	cp deploy/docker/Dockerfile build/image/Dockerfile
	docker build -q -t $(IMAGE) build/image

prometheus-image: ## build $(PROMETHEUS_IMAGE): Debian's prometheus binary and the libraries it links, FROM scratch
	@command -v prometheus >/dev/null || { echo "prometheus not found: make deps installs Debian's prometheus package"; exit 1; }
	rm -rf build/prometheus && mkdir -p build/prometheus/root
	@bin=$$(command -v prometheus); for f in $$bin $$(ldd $$bin | grep -o '/[^ ]*'); do \
		mkdir -p build/prometheus/root$$(dirname $$f) && cp -L $$f build/prometheus/root$$f; done
	cp deploy/compose/prometheus.Dockerfile build/prometheus/Dockerfile
	docker build -q -t $(PROMETHEUS_IMAGE) build/prometheus

compose-up: image prometheus-image ## the demo: 3 peers, a dev broker and Prometheus in containers (deploy/compose)
	IMAGE=$(IMAGE) PROMETHEUS_IMAGE=$(PROMETHEUS_IMAGE) $(COMPOSE) -p $(COMPOSE_PROJECT) -f deploy/compose/compose.yaml up -d
	@echo "bootstrap 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094; admin 127.0.0.1:18080; prometheus http://127.0.0.1:19090"

compose-down: ## stop the demo and remove its volumes
	$(COMPOSE) -p $(COMPOSE_PROJECT) -f deploy/compose/compose.yaml down -v

clean: ## remove build outputs
	rm -rf bin build
