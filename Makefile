# giouring go:linknames syscall.mmap/munmap, which Go only links with this
# flag; it lives here once and every target uses it.
LDFLAGS := -checklinkname=0
GOFLAGS_ALL := -ldflags=$(LDFLAGS)
BIN := bin/zerosys

.PHONY: build run test vet fmt fuzz clean

build:
	go build $(GOFLAGS_ALL) -o $(BIN) ./cmd/zerosys

run: build
	./$(BIN) $(ARGS)

vet:
	go vet $(GOFLAGS_ALL) ./...

fmt:
	gofmt -l -w .

# The whole suite: unit tests with the race detector where no ring spins,
# then everything, including end-to-end tests that start zerosys, one
# package at a time (-p 1): the claims measured end to end (syscalls and
# enters per request, idle CPU) must not share the two CPUs with another
# package's spinning shards. Tests
# that skip for want of a tool, root or CPUs are listed in one last line
# with the command that installs what they need (under CI they fail
# instead: .ci/run installs everything).
SKIPPED := $(CURDIR)/bin/skipped-tests
test: build
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet $(GOFLAGS_ALL) ./...
	@rm -f $(SKIPPED)
	ZEROSYS_SKIPPED=$(SKIPPED) go test $(GOFLAGS_ALL) -race -count=1 ./affinity/ ./listener/ ./shard/httpwire/
	ZEROSYS_SKIPPED=$(SKIPPED) go test $(GOFLAGS_ALL) -count=1 -p 1 -timeout 20m ./...
	@if [ -f deploy/deploy.mk ]; then $(MAKE) --no-print-directory test-deploy; fi
	@if [ -s $(SKIPPED) ]; then \
		pkgs=$$(cut -f3 $(SKIPPED) | sort -u | tr '\n' ' ' | sed 's/ *$$//; s/^ *//'); \
		echo "make test: passed, but skipped $$(wc -l < $(SKIPPED)) tests: $$(cut -f1,2 $(SKIPPED) | sed 's/\t/ (/; s/$$/)/' | paste -sd ';' - | sed 's/;/; /g')$${pkgs:+. Install what they need: apt-get install -y $$pkgs}"; \
	else echo "make test: passed, nothing skipped"; fi

fuzz:
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzParser -fuzztime 60s ./shard/httpwire/
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzLifecycle -fuzztime 60s ./shard/

clean:
	rm -rf bin

# deploy/ and bench/ keep their own targets (test-deploy, lab, bench,
# bench-full) beside their files.
-include deploy/deploy.mk
-include bench/bench.mk
