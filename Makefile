# Ballot build, code generation, tests and a local cluster.
#
#   make            build bin/ballotd and bin/ballot
#   make run        build, then run every replica in replicas.txt in the foreground
#   make test       check gen/, formatting and vet, then run all tests with -race
#   make gen        regenerate gen/ from idl/ (installs thrift-compiler if missing)
#   make check-gen  fail if gen/ is not what idl/ generates
#   make fmt        gofmt every Go file outside gen/
#   make clean      remove bin/ and data/

GO       ?= go
MODULE   := github.com/ballot-kv/ballot
REPLICAS ?= replicas.txt
DATA     ?= ./data

# What gofmt checks: every directory but the generated code (gofmt recurses).
GOFMT_PATHS = $(filter-out gen/ bin/ data/,$(wildcard */)) $(wildcard *.go)

.PHONY: build gen check-gen test fmt fmt-check vet run clean

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

run: build
	REPLICAS="$(REPLICAS)" DATA="$(DATA)" scripts/run-cluster.sh

clean:
	rm -rf bin data
