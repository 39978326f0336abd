# Ballot build, code generation, tests and a local cluster.
#
#   make            build bin/ballotd and bin/ballot
#   make run        build, then run every replica in replicas.txt in the foreground
#   make certs      write a local CA and TLS certificates for replicas.txt into
#                   certs/, for trying TLS (docs/security.md)
#   make test       check gen/, formatting and vet, then run all tests with -race
#   make test-tls   the end-to-end tests again, every cluster with mutual TLS
#                   between replicas and TLS with client certificates for clients
#   make gen        regenerate gen/ from idl/ (installs thrift-compiler if missing)
#   make check-gen  fail if gen/ is not what idl/ generates
#   make stubs LANG=py   generate KV client stubs for one language into build/stubs/py/
#   make stubs      list the languages the Thrift compiler can generate
#   make fmt        gofmt every Go file outside gen/
#   make clean      remove bin/ and data/
#   make chaos      100,000 simulated schedules, then a long linearizability
#                   campaign on real replicas under faults (docs/testing.md)
#   make bench      benchmark matrix into bench/results/ (docs/performance.md)
#   make bench-etcd     the same matrix on etcd 3.6.16 (bench/etcd, a module of its own)
#   make bench-compare  Ballot and etcd cell by cell in one run, ROUNDS (3) rounds
#   make fuzz       every fuzz target, one after another, FUZZTIME (60s) each, with
#                   a summary line per target (docs/testing.md)

GO       ?= go
MODULE   := github.com/ballot-kv/ballot
REPLICAS ?= replicas.txt
DATA     ?= ./data

# What gofmt checks: every directory but the generated code (gofmt recurses).
GOFMT_PATHS = $(filter-out gen/ bin/ data/ build/,$(wildcard */)) $(wildcard *.go)

.PHONY: build gen check-gen stubs test fmt fmt-check vet run clean

build: bin/.modules
	$(GO) build -o bin/ballotd ./server/cmd/ballotd
	$(GO) build -o bin/ballot ./client/cmd/ballot

# Download Go modules again only when go.mod or go.sum has changed.
bin/.modules: go.mod go.sum
	$(GO) mod download
	@mkdir -p bin && touch $@

gen:
	scripts/ensure-thrift.sh
	rm -rf gen && mkdir gen
	for f in kv peer; do \
		thrift -r --gen go:package_prefix=$(MODULE)/gen/,skip_remote -out gen idl/$$f.thrift || exit 1; \
	done

check-gen: gen
	@changed="$$(git status --porcelain -- gen)"; \
	if [ -n "$$changed" ]; then \
		echo "gen/ does not match idl/; commit the regenerated files:"; \
		echo "$$changed"; \
		exit 1; \
	fi

# Client stubs for other languages, from idl/kv.thrift, into build/stubs/LANG/
# (LANG may carry generator options, as in LANG=java:generated_annotations=suppress;
# the directory is named for the part before the colon). LANG is also the locale
# variable, so only a LANG given on the make command line counts. The go.mod in
# build/stubs keeps generated Go stubs out of this module's ./... (go vet, go test).
STUBS_LANG := $(if $(filter command line,$(origin LANG)),$(LANG))
STUBS_DIR  := build/stubs

stubs: export STUBS_WANT := $(STUBS_LANG)
stubs:
	@scripts/ensure-thrift.sh
	@langs="$$(thrift --help 2>&1 | sed -n 's/^  \([a-z_][a-z0-9_]*\) (.*):$$/\1/p')"; \
	want="$$STUBS_WANT"; lang="$${want%%:*}"; \
	if [ -z "$$want" ]; then \
		echo "usage: make stubs LANG=<language>[:options]   (generates $(STUBS_DIR)/<language>/)"; \
		echo "languages of $$(thrift --version), see 'thrift --help' for their options:"; \
		echo "$$langs" | sed 's/^/  /'; \
		exit 0; \
	fi; \
	if ! echo "$$langs" | grep -qxF -- "$$lang"; then \
		echo "make stubs: '$$lang' is not a language of $$(thrift --version); choose one of:" >&2; \
		echo "$$langs" | sed 's/^/  /' >&2; \
		exit 2; \
	fi; \
	rm -rf "$(STUBS_DIR)/$$lang" && mkdir -p "$(STUBS_DIR)/$$lang" && \
	printf 'module ballot-stubs\n' > "$(STUBS_DIR)/go.mod" && \
	thrift -r --gen "$$want" -out "$(STUBS_DIR)/$$lang" idl/kv.thrift && \
	echo "$$lang stubs for idl/kv.thrift in $(STUBS_DIR)/$$lang/"

fmt:
	gofmt -w $(GOFMT_PATHS)

fmt-check:
	@unformatted="$$(gofmt -l $(GOFMT_PATHS))"; \
	if [ -n "$$unformatted" ]; then \
		echo "not gofmt-formatted (run make fmt):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

test: check-gen fmt-check vet
	$(GO) test -race -count=1 -timeout 12m ./...

# Every e2e cluster with --peer-cert/--peer-key/--peer-ca and --client-cert/
# --client-key/--client-ca, and every client with the CA and a client
# certificate (e2e/tlsmode_test.go): the earlier tests must pass with TLS on.
.PHONY: test-tls
test-tls:
	BALLOT_TEST_TLS=1 $(GO) test -race -count=1 -timeout 20m ./e2e

run: build
	REPLICAS="$(REPLICAS)" DATA="$(DATA)" scripts/run-cluster.sh

# A new local CA and a certificate for every replica of REPLICAS and for a client,
# in certs/; refuses to replace files there (run bin/ballot certs --force for that).
.PHONY: certs
certs: build
	bin/ballot --replicas $(REPLICAS) certs --out certs

clean:
	rm -rf bin data

# The long chaos campaign (docs/testing.md): real replicas under faults, checked
# for linearizability with porcupine, for DURATION in histories of 60s. REPLICAS
# here is a count when given on the command line (make chaos REPLICAS=5); FAULTS
# is a comma-separated mix or "all" (wipes, membership changes and disk failures
# included); SEED replays a schedule; COMPACTION is aggressive (a snapshot every
# 200 slots), off, or ballotd flags as in every-slots=10000,retain-slots=1000.
# The last line printed is the campaign's summary.
DURATION      ?= 10m
SEED          ?=
FAULTS        ?= all
COMPACTION    ?= aggressive
CHAOS_OUT     ?= $(or $(TMPDIR),/tmp)/ballot-chaos
CHAOS_TIMEOUT ?= 6h

# The simulator's long run: SIM_SCHEDULES random schedules of the Paxos core for
# each of 3 and 5 replicas (100,000 in all by default), from seed SIM_FIRST.
SIM_SCHEDULES ?= 50000
SIM_FIRST     ?= 1

.PHONY: chaos chaos-sim
chaos: chaos-sim chaos-live

chaos-sim:
	BALLOT_SIM_SCHEDULES=$(SIM_SCHEDULES) BALLOT_SIM_FIRST=$(SIM_FIRST) \
		$(GO) test -count=1 -timeout $(CHAOS_TIMEOUT) -run '^TestRandomSchedules$$' -v ./peer

.PHONY: chaos-live
chaos-live: bin/.modules
	@mkdir -p "$(CHAOS_OUT)" && rm -f "$(CHAOS_OUT)/summary.txt"
	@echo "chaos: progress in $(CHAOS_OUT)/progress.log, evidence of failures under $(CHAOS_OUT)"
	@CHAOS_LONG=1 CHAOS_DURATION="$(DURATION)" CHAOS_SEED="$(SEED)" CHAOS_FAULTS="$(FAULTS)" CHAOS_COMPACTION="$(COMPACTION)" \
		CHAOS_REPLICAS="$(if $(filter command line,$(origin REPLICAS)),$(REPLICAS),5)" CHAOS_OUT="$(CHAOS_OUT)" \
		$(GO) test -count=1 -run '^TestChaosLong$$' -timeout $(CHAOS_TIMEOUT) ./chaos; \
	status=$$?; \
	if [ -f "$(CHAOS_OUT)/summary.txt" ]; then cat "$(CHAOS_OUT)/summary.txt"; \
	else echo "chaos: no summary: the campaign did not run (see above)"; fi; \
	exit $$status

# The benchmark matrix (docs/performance.md): a fresh cluster of bin/ballotd on
# loopback per cell, for 1, 3 and 5 replicas, 1 to 256 clients, 100-byte and 4 KiB
# values, put, linearizable and stale get; throughput, latency percentiles and the
# replicas' CPU time per operation go to bench/results/ (markdown, JSON, PNG). The
# full matrix takes about 10 minutes. Subsets and cell length come from the
# environment, e.g.
#   BENCH_REPLICAS=3 BENCH_CLIENTS=64 BENCH_VALUES=100 BENCH_OPS=put BENCH_DURATION=5s make bench
.PHONY: bench
bench: build
	$(GO) build -o bin/benchmatrix ./bench/cmd/benchmatrix
	bin/benchmatrix -ballotd bin/ballotd -out bench/results

# etcd measured as make bench measures Ballot (docs/performance.md, "Side by side
# with etcd"): bin/etcdmatrix runs the same cells, chosen by the same BENCH_*
# variables, on fresh etcd 3.6.16 clusters that it starts as its own children, and
# writes bench/results/etcd-*. bench/etcd is a module of its own, so that etcd and
# gRPC stay out of this module's dependencies; its first build downloads them.
.PHONY: bench-etcd bench-compare
bench-etcd:
	@mkdir -p bin
	cd bench/etcd && $(GO) build -o ../../bin/etcdmatrix ./cmd/etcdmatrix
	bin/etcdmatrix

# Ballot against etcd in one run, since this machine's speed drifts from day to
# day: ROUNDS rounds of a few cells (3 replicas, 64 clients, 100-byte put and
# linearizable get; 1 client put; or BENCH_CELLS, or the BENCH_* lists), each on
# Ballot then at once on etcd; a markdown table of ops/s, their ratio per round
# and its median, p99 and CPU per operation, also in bench/results/compare-*.md.
# About 3 minutes with the defaults.
ROUNDS ?= 3

bench-compare: build
	$(GO) build -o bin/benchmatrix ./bench/cmd/benchmatrix
	cd bench/etcd && $(GO) build -o ../../bin/etcdmatrix ./cmd/etcdmatrix
	ROUNDS="$(ROUNDS)" scripts/bench-compare.sh

# Fuzzing (docs/testing.md): every Go fuzz target in the repository, found with
# go test -list so a new one is run without editing this file, one after another
# for FUZZTIME each (a duration, or Nx for N inputs) with FUZZPARALLEL workers.
# The last lines printed are a summary: target, package, time, executions,
# executions per second and result. make test runs the seed corpora.
FUZZTIME     ?= 60s
FUZZPARALLEL ?= 2

.PHONY: fuzz
fuzz: bin/.modules
	FUZZTIME="$(FUZZTIME)" FUZZPARALLEL="$(FUZZPARALLEL)" GO="$(GO)" scripts/fuzz.sh
