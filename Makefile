# giouring go:linknames syscall.mmap/munmap, which Go only links with this
# flag; it lives here once and every target uses it.
LDFLAGS := -checklinkname=0
GOFLAGS_ALL := -ldflags=$(LDFLAGS)
BIN := bin/zerosys
# h2spec, the HTTP/2 conformance suite the tests run (built from the
# module proxy into bin/).
H2SPEC := $(CURDIR)/bin/h2spec
H2SPEC_VERSION := v2.2.1+incompatible
# grpc-health-probe, the gRPC health client Kubernetes' examples use.
GRPC_PROBE := $(CURDIR)/bin/grpc-health-probe
GRPC_PROBE_VERSION := v0.4.62

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
$(H2SPEC):
	GOBIN=$(CURDIR)/bin go install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)

$(GRPC_PROBE):
	GOBIN=$(CURDIR)/bin go install github.com/grpc-ecosystem/grpc-health-probe@$(GRPC_PROBE_VERSION)

test: build $(H2SPEC) $(GRPC_PROBE)
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet $(GOFLAGS_ALL) ./...
	@rm -f $(SKIPPED)
	ZEROSYS_SKIPPED=$(SKIPPED) H2SPEC=$(H2SPEC) go test $(GOFLAGS_ALL) -race -count=1 ./affinity/ ./listener/ ./shard/httpwire/ ./shard/h2wire/ ./shard/h2/
	ZEROSYS_SKIPPED=$(SKIPPED) H2SPEC=$(H2SPEC) GRPC_PROBE=$(GRPC_PROBE) go test $(GOFLAGS_ALL) -count=1 -p 1 -timeout 20m ./...
	@if [ -f deploy/deploy.mk ]; then $(MAKE) --no-print-directory test-deploy; fi
	@if [ -s $(SKIPPED) ]; then \
		pkgs=$$(cut -f3 $(SKIPPED) | sort -u | tr '\n' ' ' | sed 's/ *$$//; s/^ *//'); \
		echo "make test: passed, but skipped $$(wc -l < $(SKIPPED)) tests: $$(cut -f1,2 $(SKIPPED) | sed 's/\t/ (/; s/$$/)/' | paste -sd ';' - | sed 's/;/; /g')$${pkgs:+. Install what they need: apt-get install -y $$pkgs}"; \
	else echo "make test: passed, nothing skipped"; fi

fuzz:
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzParser -fuzztime 60s ./shard/httpwire/
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzLifecycle -fuzztime 60s ./shard/
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./shard/h2wire/
	go test $(GOFLAGS_ALL) -run '^$$' -fuzz FuzzConn -fuzztime 60s ./shard/h2/

clean:
	rm -rf bin

# deploy/ and bench/ keep their own targets (test-deploy, lab, bench,
# bench-full) beside their files.
-include deploy/deploy.mk
-include bench/bench.mk
