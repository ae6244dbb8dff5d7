# Threadline. `make run` starts the embedded default stack; `make test` is what CI runs.
GO       ?= go
BIN      := bin
BINARIES := ./ingest ./linker ./notewriter ./summarizer ./cmd/devstack ./cmd/fakeintercom
TESTFLAGS ?=

.PHONY: build run test fmt-check vet bench fuzz clean

build:
	$(GO) build -o $(BIN)/ $(BINARIES)

run: build
	$(BIN)/devstack

test: fmt-check vet
	$(GO) test -race -count=1 $(TESTFLAGS) ./...

fmt-check:
	@out="$$(gofmt -l $$(find . -name '*.go' -not -path './node_modules/*' -not -path './.run/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The package Benchmark* functions (short -benchtime), then the pipeline benchmark: the four binaries
# as processes under load beside their limits. Prints the table, writes bench/RESULTS.md and the
# table between the bench markers of README.md;
# BENCHFLAGS passes bench.* flags (go run ./bench/cmd/pipelinebench -h lists them).
BENCHFLAGS ?=
bench:
	$(GO) run ./bench/cmd/pipelinebench $(BENCHFLAGS)

FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN) .run

# The reliability suite (e2e/chaos): `make chaos` runs the full chaos run (CI runs a short one with
# the rest of the tests); `make corpus` sends the bad input corpus through every entry point.
CHAOS_DURATION ?= 7m
.PHONY: chaos corpus
chaos:
	THREADLINE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -timeout 30m -run '^TestChaos$$' -v ./e2e/chaos/

corpus:
	$(GO) test -race -count=1 -timeout 10m -run '^TestBadInputCorpus$$' -v ./e2e/chaos/
