# kobs: `make run` starts the main job, `make test` runs every test
# (installing what the tests need), `make bench` the benchmarks.

GO        ?= go
BIN       := bin/kobs
PKGS      := ./...
FUZZTIME  ?= 10s
# Interop and Prometheus tests fail instead of skipping when their tools are
# missing: make test installs them, so a skip would hide a broken install.
export KOBS_REQUIRE_INTEROP := 1
export KOBS_REQUIRE_PROMETHEUS := 1
export KOBS_REQUIRE_BURROW := 1
# The full-disk test mounts a small tmpfs (needs root, as the make test host has).
export KOBS_REQUIRE_TMPFS := 1

.PHONY: all build run test deps vet unit race fuzz bench clean dashboards alerts soak

all: build

build:
	$(GO) build -o $(BIN) ./cmd/kobs

# The main job on the embedded default: three brokers on 127.0.0.1:9092-9094,
# the trace store on 127.0.0.1:9200 and the shipper between them, the agent and
# the audit reconciler, data under ./data.
run: build
	@mkdir -p data
	@echo "kobs: 3 brokers on 127.0.0.1:9092,9093,9094 (Kafka protocol), telemetry on http://127.0.0.1:8778, 8788, 8798 (/jolokia, /metrics),"
	@echo "      trace store on http://127.0.0.1:9200 (Elasticsearch API, journeys on /v1/trace/), data under ./data"
	@echo "      agent on http://127.0.0.1:9308 (lag and failing ISR: /metrics, /v1/groups, /v1/partitions/failing)"
	@echo "      audit reconciler on http://127.0.0.1:8780 (/metrics, /v1/audit/; kobs audit report --topic T)"
	@alerts/run-monitoring.sh $$PPID &
	$(BIN) run --brokers 3 --config config/server.properties

deps:
	scripts/install-test-deps.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -count=1 -timeout 15m $(PKGS)

# Short fuzz runs of the request decoder and the record batch validator; the
# committed seed corpora under testdata/fuzz run in `unit` as regular tests.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./broker/wire
	$(GO) test -run '^$$' -fuzz '^FuzzValidateBatches$$' -fuzztime $(FUZZTIME) ./broker/log

# The race detector on the broker, exporters and test helpers (tracing under
# -race takes ~2 min more and is left to developers: go test -race ./tracing/...).
race:
	$(GO) test -race -count=1 ./broker/... ./exporters/... ./internal/...

test: deps vet unit race fuzz

# Benchmarks: produce throughput of kobs against franz-go's kfake in the same
# script (ratio printed), the Go micro-benchmarks (telemetry on/off, metric
# primitives, scrape cost, log append/read/clean), then the trace benchmarks
# (interceptor on/off, shipper rate, journey query latency by store size),
# then the audit benchmarks (hook on/off, reconciler at 1,000 x 100),
# then one agent cycle over 100,000 partitions and 100 groups on kfake, then
# the replicated cluster (acks=all RF 3 against acks=1 RF 1, leader failover
# time over 10 kills, restart of a broker holding 1,000 partitions).
bench: build
	KOBS=$(BIN) scripts/bench-produce.sh
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./broker/... ./exporters/...
	scripts/bench-trace.sh
	scripts/bench-audit.sh
	KOBS=$(BIN) scripts/bench-agent.sh
	scripts/bench-cluster.sh

# Soak (not in `make test`, < 10 min): 20 leader kill -9 rounds and a rolling
# restart of a 3-broker RF 3 cluster under an idempotent acks=all producer, a
# connection flood and a disk-full cycle (tmpfs, needs root); each part prints
# acknowledged vs read back and fails on any loss or duplicate.
soak:
	scripts/soak.sh

# Generated Grafana dashboards (dashboards/generated) and Prometheus rules,
# their promtool tests and scrape config (alerts/generated); tests fail when
# the committed files are stale.
dashboards:
	$(GO) run ./cmd/kobs dashboards generate

alerts:
	$(GO) run ./cmd/kobs alerts generate

clean:
	rm -rf bin
