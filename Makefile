# Developer targets. `make test` is the README's test command; .ci/run is CI.
GO ?= go
PKGS := ./...

.PHONY: all build fmt vet lint test test-short test-e2e bench bench-serve fuzz check-config check-deploy tidy vuln ci

all: fmt vet test

build:
	$(GO) build -trimpath -o pipgate ./cmd/pipgate

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# lint runs the pinned golangci-lint (see .golangci.yml; .ci/run installs it).
lint:
	golangci-lint run $(PKGS)

test:
	$(GO) test -race $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

test-e2e:
	$(GO) test -race -run 'E2E' -v ./cmd/pipgate/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pypi/ ./policy/ ./cache/ ./provenance/ ./proxy/

# Cache-hit serving against nginx proxy_cache (needs nginx, wrk: apt-get install -y nginx wrk).
bench-serve:
	scripts/bench-serve.sh

fuzz:
	@for pkg in ./pypi/ ./provenance/ ./policy/; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime 10s $$pkg || exit 1; \
	  done; \
	done

check-config:
	$(GO) run ./cmd/pipgate serve --config configs/pipgate.yaml --config.check
	@for f in configs/policy*.yaml; do $(GO) run ./cmd/pipgate policy check $$f || exit 1; done

# deploy/ against the binary it runs (promtool, systemd-analyze, docker
# compose where installed; they skip, saying why, where not).
check-deploy:
	$(GO) test -count=1 -v ./deploy/

tidy:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

vuln:
	$(GO) run golang.org/x/vuln/cmd/govulncheck@latest $(PKGS)

ci:
	bash .ci/run
