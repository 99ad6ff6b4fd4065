# hivelet — see README.md. Every target installs what it needs (hack/deps.sh).
SHELL := /bin/bash
GO    ?= go
BIN   := bin

.PHONY: all deps vmlinux generate build image test test-k8s k8s-harness demo demo-agent fuzz bench bench-k8s bench-kubelet lint clean cluster-up cluster-down test-cluster conformance

all: build

deps:
	@./hack/deps.sh

# vmlinux.h follows the running kernel: refresh on purpose only.
vmlinux: deps
	@echo ">> dumping kernel BTF into vmlinux/vmlinux.h"
	./vmlinux/update.sh

generate: deps
	@echo ">> compiling bpf/*.c with bpf2go (clang-19)"
	cd datapath && $(GO) generate ./...

build: deps
	@echo ">> building $(BIN)/hivelet, $(BIN)/hivelet-cni and $(BIN)/hivelet-kubelet"
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/hivelet ./cmd/hivelet
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/hivelet-cni ./cmd/hivelet-cni
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/hivelet-kubelet ./cmd/hivelet-kubelet

# The container image as an OCI layout archive, with no container engine:
# `ctr -n k8s.io images import bin/hivelet-image.tar` on each node. Same
# sources, same digest (static binaries built with -trimpath, fixed times).
image: build
	@echo ">> writing $(BIN)/hivelet-image.tar (the three binaries, nothing else)"
	$(GO) run ./hack/image --bin $(BIN) --out $(BIN)/hivelet-image.tar

lint:
	@echo ">> gofmt and go vet"
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# A real kube-apiserver v1.37.2 + etcd on loopback for the Kubernetes tier
# (hack/k8s.sh; the build is cached outside the repository).
k8s-harness: deps
	@echo ">> kube-apiserver for the Kubernetes tests (first build ~10 min, then cached)"
	./hack/k8s.sh build

# Unit, privileged (root: namespaces, cgroups, BPF), end-to-end and
# real-API-server tests. Packages run one at a time: privileged tests move
# the test process between cgroups.
test: deps lint k8s-harness
	@echo ">> go test (unit + privileged + e2e + real API server, needs root)"
	$(GO) test -p 1 -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

# Budget of each fuzz target in `make test` (the seed corpus is committed);
# `make fuzz FUZZTIME=10m` for a longer run.
FUZZTIME ?= 10s

# Input that crosses a trust boundary, random: pod specs through admission
# and CRI conversion, manifests files, API list bodies, CNI configurations.
FUZZ_TARGETS := FuzzPodSpec:./kubelet-lite/pods FuzzParseFile:./daemon/manifests FuzzDecodeList:./daemon/k8s FuzzParse:./cni-plugin/config
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  echo ">> fuzz: $${t%%:*} in $${t#*:} ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; \
	done

test-k8s: deps k8s-harness
	@echo ">> go test ./test/k8s (agent against a real API server)"
	$(GO) test -count=1 -timeout 10m ./test/k8s/...

demo: build
	@echo ">> demo: a whole node standalone: containerd + hivelet node, static pods behind a Service"
	./hack/demo.sh

# The agent alone: network namespaces behind a ClusterIP, no containers.
demo-agent: build
	@echo ">> demo: 3 pod namespaces behind a ClusterIP, socket LB on a child cgroup"
	./hack/demo-agent.sh

bench: deps
	@echo ">> benchmarks (ratios against a baseline measured in the same run)"
	./hack/bench.sh

# hivelet and upstream kube-proxy (nftables, iptables-legacy) against the
# same real API server and objects, in the same run: start to programmed,
# API-to-datapath latency of single EndpointSlice edits, RSS; a table and
# a chart in test/results/k8s. The Services are created through the API
# once per size and kept in etcd under /var/cache/hivelet-k8s/bench-N
# (hack/k8s.sh wipe drops them; 100k take long the first time).
# HIVELET_BENCH_SERVICES and HIVELET_BENCH_PROXIES narrow the run.
BENCH_K8S_SERVICES ?= 1000,10000,100000
bench-k8s: deps k8s-harness
	@echo ">> hivelet vs kube-proxy against a real API server (first run creates the Services: minutes to hours)"
	HIVELET_BENCH_SERVICES=$${HIVELET_BENCH_SERVICES:-$(BENCH_K8S_SERVICES)} HIVELET_BENCH_RESULTS=$(CURDIR)/test/results/k8s \
		$(GO) test -run '^$$' -bench BenchmarkK8sProxies -benchtime 1x -timeout 240m -v ./test/k8sbench

# kubelet-lite vs the upstream kubelet v1.37.2 (built once by hack/k8s.sh,
# several minutes) vs the raw CRI calls, same containerd, same pods, one
# run: API create → Running p50/p99 for 30 pods one by one, 30 at once,
# RSS; the kubelet API: exec round trip and logs -f first byte; and how
# long memory stays under memory.available's threshold once a hog crosses
# it (eviction reaction).
bench-kubelet: deps k8s-harness
	@echo ">> building the upstream kubelet (cached) for the comparison"
	./hack/k8s.sh build-kubelet
	@echo ">> pod start, the kubelet API (exec, logs -f) and eviction reaction: kubelet-lite vs upstream kubelet (vs raw CRI)"
	$(GO) test -run '^$$' -bench 'BenchmarkPodStart|BenchmarkKubeletAPI|BenchmarkEvictionReaction' -benchtime 1x -timeout 30m -v ./test/kubelet | grep -v '^\s*[IW][0-9]'

# A cluster whose nodes run only hivelet (hack/cluster.sh): an upstream
# control plane in a network namespace of its own, NODES nodes, CoreDNS.
# KIND=kpr or upstream for the other node kinds. First time: the control
# plane and CoreDNS are built (~20 min, cached in /var/cache/hivelet-k8s).
NODES ?= 2
KIND ?= hivelet
cluster-up: deps build
	./hack/cluster.sh up --nodes $(NODES) --kind $(KIND)

cluster-down:
	./hack/cluster.sh down

# kubectl exec -it, attach, port-forward, logs -f, cp and the summary API
# through the API server on hack/cluster.sh (brought up if it is not).
test-cluster: deps build
	@echo ">> kubectl against hivelet nodes (hack/cluster.sh)"
	HIVELET_CLUSTER=1 $(GO) test -count=1 -timeout 40m -v ./test/cluster

# The upstream e2e suite's [Conformance] tests of sig-node, sig-storage,
# sig-apps, sig-cli and sig-network on hack/cluster.sh; NODE=hivelet (default),
# kpr or upstream; FOCUS=regex narrows them (both passed on to the script
# from the command line or the environment). Results:
# test/results/conformance/results.md.
conformance: deps build
	./hack/conformance.sh

clean:
	rm -rf $(BIN)
