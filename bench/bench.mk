# Benchmarks (see BENCHMARKS.md and bench/bench.py). This fragment is
# included at the end of the top-level Makefile, so `build` is defined.
#   make bench          quick: keep-alive 64, pipelined x16, churn; 3 runs x 3 s (a few minutes)
#   make bench-full     everything: + keep-alive 256, h2load pipelining, the
#                       10 -> 10,000 connection sweep, 4 KiB / 64 KiB / 1 MiB bodies
#   make bench-report   rewrite BENCHMARKS.md from the saved results
#   make conformance    the HTTP/1.1 conformance corpus against zerosys and nginx,
#                       side by side: bench/results/conformance.md
# Extra flags go through BENCH_ARGS, e.g. make bench BENCH_ARGS="--runs 5 --duration 10"
# or BENCH_ARGS="--servers nginx,zerosys-off --profiles keepalive-64".
BENCH_ARGS ?=

.PHONY: bench bench-full bench-report conformance

bench: build
	bash bench/bench.sh quick $(BENCH_ARGS)

bench-full: build
	bash bench/bench.sh full $(BENCH_ARGS)

bench-report:
	python3 bench/bench.py --render

conformance: build
	@command -v nginx >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1 || { \
		echo "make conformance needs nginx: apt-get install -y nginx-light"; exit 1; }
	PATH="$$PATH:/usr/sbin" ZEROSYS_CONFORMANCE_OUT=$(CURDIR)/bench/results/conformance.md \
		go test $(GOFLAGS_ALL) -count=1 -run 'TestConformanceNginx' -v ./cmd/zerosys/
