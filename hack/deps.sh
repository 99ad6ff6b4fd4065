#!/usr/bin/env bash
# deps.sh installs the Debian packages hivelet's build, tests and demo need.
# Idempotent: it only touches apt when a package is missing, and then runs
# `apt-get update` first. Run as root.
set -euo pipefail

PACKAGES=(
  clang-19 llvm-19      # bpf2go compiles bpf/*.c with clang-19, strips with llvm-strip-19
  libbpf-dev            # bpf_helpers.h and friends for the C programs
  bpftool               # `make vmlinux` dumps kernel BTF into vmlinux/vmlinux.h
  iproute2              # network namespaces and veths for tests and the demo
  util-linux            # nsenter, used by the demo
  curl                  # the demo's client
  busybox-static        # the demo's tiny HTTP servers
  etcd-server openssl   # hack/k8s.sh: a real API server for the Kubernetes tests
  nftables iptables     # make bench-k8s: upstream kube-proxy's nftables and iptables modes
  containernetworking-plugins  # the reference bridge + host-local plugins hivelet-cni is measured against
  containerd runc       # the real runtime hivelet-cni's end-to-end tests run pods with
  make git ca-certificates
  netcat-openbsd bind9-dnsutils  # make conformance: the e2e images' nc and dig, as upstream's alpine has them
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run as root (or install them yourself)" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
echo "deps: done"
