# deploy/deploy.mk: deployment files' checks and the load-balanced lab.
# Included at the end of the top-level Makefile; run from the repository
# root as root (CI: a fresh Debian 12 machine). Installs what it needs.
#
#   make test-deploy   validators + a short lab run (~30 s)
#   make lab           the full lab: make lab LAB_SECONDS=60 LAB_CONNS=32 LAB_RATE=5000

LAB_SECONDS        ?= 30
LAB_CONNS          ?= 16
LAB_RATE           ?= 3000
LAB_UPGRADE_RATE   ?= 3000
LAB_UPGRADE_CYCLES ?= 3
LAB_DRAIN_DELAY    ?= 3s
LAB_DRAIN_TIMEOUT  ?= 10s
LAB_ARGS           ?=

# command:package pairs; a package is installed only if its command is missing.
DEPLOY_TOOLS := haproxy:haproxy nginx:nginx-light systemd-analyze:systemd ip:iproute2 curl:curl strace:strace pgrep:procps

.PHONY: test-deploy lab deploy-deps deploy-check deploy-lab-short

deploy-deps:
	@missing=""; for t in $(DEPLOY_TOOLS); do \
		command -v "$${t%%:*}" >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin:/sbin" command -v "$${t%%:*}" >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deploy: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Validators. The seccomp test runs against the committed strace fixture
# and against a fresh list from a static build like the container's.
deploy-check: build deploy-deps
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	CGO_ENABLED=0 go build $(GOFLAGS_ALL) -o "$$tmp/zerosys-static" ./cmd/zerosys; \
	deploy/container/syscalls.sh "$$tmp/zerosys-static" "$$tmp/static.txt"; \
	deploy/container/syscalls.sh $(BIN) "$$tmp/dynamic.txt"; \
	sort -u "$$tmp/static.txt" "$$tmp/dynamic.txt" > "$$tmp/syscalls.txt"; \
	echo "deploy: zerosys made $$(wc -l < "$$tmp/syscalls.txt") distinct system calls under strace"; \
	ZEROSYS_SYSCALLS="$$tmp/syscalls.txt" go test -count=1 ./deploy/container/; \
	deploy/systemd/check.sh $(BIN) "$$tmp/syscalls.txt"; \
	deploy/haproxy/check.sh; \
	deploy/nginx/check.sh; \
	(cd deploy/kubernetes/check && ZEROSYS_BIN=$(CURDIR)/$(BIN) go test -count=1 ./...); \
	(cd deploy/lab && go vet ./...)

# The short lab runs twice: HAProxy speaking HTTP/1.1 to the hosts, then
# HTTP/2 over cleartext (server ... proto h2).
deploy-lab-short: build deploy-deps
	deploy/lab/lab.sh -bin $(BIN) -short -seconds 10 -conns 8 -rate 2000 -upgrade-rate 2000 \
		-drain-delay 3s -drain-timeout 1s $(LAB_ARGS)
	deploy/lab/lab.sh -bin $(BIN) -short -seconds 10 -conns 8 -rate 2000 -upgrade-rate 2000 \
		-drain-delay 3s -drain-timeout 1s -proto h2 $(LAB_ARGS)

test-deploy: deploy-check deploy-lab-short

lab: build deploy-deps
	deploy/lab/lab.sh -bin $(BIN) -seconds $(LAB_SECONDS) -conns $(LAB_CONNS) -rate $(LAB_RATE) \
		-upgrade-rate $(LAB_UPGRADE_RATE) -upgrade-cycles $(LAB_UPGRADE_CYCLES) \
		-drain-delay $(LAB_DRAIN_DELAY) -drain-timeout $(LAB_DRAIN_TIMEOUT) $(LAB_ARGS)
