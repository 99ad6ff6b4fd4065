#!/usr/bin/env bash
# k8s.sh: a real Kubernetes control plane on loopback for tests and
# benchmarks: etcd (Debian's etcd-server) and kube-apiserver v1.37.2 built
# from the Go module proxy, with generated certificates.
#
#   hack/k8s.sh build   build kube-apiserver and kube-proxy (once; cached)
#   hack/k8s.sh build-kubelet   also the upstream kubelet (for make bench-kubelet)
#   hack/k8s.sh build-cluster   also kube-controller-manager, kube-scheduler, kubectl (hack/cluster.sh)
#   hack/k8s.sh build-e2e       also e2e.test, agnhost and ginkgo (make conformance)
#   hack/k8s.sh up      build if needed, start etcd + kube-apiserver, print the kubeconfig path
#   hack/k8s.sh down    stop them (etcd data is kept: reused by the next `up`)
#   hack/k8s.sh wipe    stop them and delete the etcd data
#   hack/k8s.sh env     print `export KUBECONFIG=...`
#
# Everything lives in $HIVELET_K8S_DIR (default /var/cache/hivelet-k8s),
# outside the repository. Nothing listens beyond 127.0.0.1. Several control
# planes can live side by side (benchmarks keep one per size): each has its
# own $HIVELET_K8S_DATA (default: the same dir) and HIVELET_ETCD_PORT /
# HIVELET_API_PORT, and they share the binaries.
#
# HIVELET_ETCD_TMPFS=1 (benchmarks) runs etcd from a copy of its data in
# /dev/shm, copied back by `down`: disk flush stalls of this machine then
# stay out of API write latency, which every proxy's figures include.
set -euo pipefail

K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
DIR=${HIVELET_K8S_DIR:-/var/cache/hivelet-k8s}
BIN=$DIR/bin
DATA=${HIVELET_K8S_DATA:-$DIR}
PKI=$DATA/pki
RUN=$DATA/run
ETCD_PORT=${HIVELET_ETCD_PORT:-23790}
API_PORT=${HIVELET_API_PORT:-16443}
KUBECONFIG_PATH=$DATA/admin.kubeconfig
ETCD_TMPFS=/dev/shm/hivelet-etcd-$ETCD_PORT

log() { echo "k8s: $*" >&2; }

# K8S_BUILD is what a cached binary's stamp records: the version, and how
# it was built (bumped when the build changes, so caches rebuild).
K8S_BUILD="$K8S_VERSION stamped"

# version_ldflags stamps the version as release builds do: a plain `go
# build` reports v0.0.0-master+$Format:%H$, which `kubectl version` (and
# the conformance test that runs it) refuses to parse.
version_ldflags() {
  local minor=${K8S_VERSION#v1.} pkg out=""
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+="-X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z "
  done
  echo "$out"
}

build() {
  local stamp=$BIN/.version
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-proxy" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$K8S_BUILD" ]; then
    return
  fi
  log "building kube-apiserver and kube-proxy $K8S_VERSION from the Go module proxy (cold: ~10 min, then cached in $DIR)"
  mkdir -p "$DIR/tools" "$BIN"
  local gomod
  gomod=$(cd "$DIR/tools" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    printf 'module hivelet.local/k8stools\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    # k8s.io/kubernetes requires its staging modules at v0.0.0; each is
    # published on its own at the matching v0 version.
    awk '$1 ~ /^k8s.io\// && $2 == "v0.0.0" {print "\t" $1 " => " $1 " '"$STAGING_VERSION"'"}' "$gomod"
    printf ')\n'
  } > "$DIR/tools/go.mod"
  cat > "$DIR/tools/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  (cd "$DIR/tools" && go mod tidy >/dev/null \
    && CGO_ENABLED=0 go build -ldflags "$(version_ldflags)" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
    && CGO_ENABLED=0 go build -ldflags "$(version_ldflags)" -o "$BIN/kube-proxy" k8s.io/kubernetes/cmd/kube-proxy)
  echo "$K8S_BUILD" > "$stamp"
}

# build_extra builds more commands of k8s.io/kubernetes with the same tools
# module, each once: the upstream kubelet for the kubelet-lite benchmark,
# the rest of a control plane and kubectl for hack/cluster.sh.
build_extra() { # cmd/NAME...
  build
  local name
  for name in "$@"; do
    [ -x "$BIN/$name" ] && [ "$(cat "$BIN/.$name-version" 2>/dev/null)" = "$K8S_BUILD" ] && continue
    log "building $name $K8S_VERSION (first time: several minutes, then cached in $BIN)"
    grep -q "cmd/$name\"" "$DIR/tools/tools.go" || sed -i "s|_ \"k8s.io/kubernetes/cmd/kube-proxy\"|&\n\t_ \"k8s.io/kubernetes/cmd/$name\"|" "$DIR/tools/tools.go"
    (cd "$DIR/tools" && go mod tidy >/dev/null && CGO_ENABLED=0 go build -ldflags "$(version_ldflags)" -o "$BIN/$name" "k8s.io/kubernetes/cmd/$name")
    echo "$K8S_BUILD" > "$BIN/.$name-version"
  done
}

# build_e2e builds the upstream conformance suite: e2e.test, the agnhost
# test image's binary and the ginkgo runner (parallel processes).
build_e2e() {
  build
  if [ ! -x "$BIN/e2e.test" ] || [ "$(cat "$BIN/.e2e-version" 2>/dev/null)" != "$K8S_VERSION" ]; then
    log "building e2e.test, agnhost and ginkgo $K8S_VERSION (first time: ~15 min, then cached in $BIN)"
    # The suite's own test dependencies are not in the tools module's
    # graph until asked for: -mod=mod records them.
    (cd "$DIR/tools" && GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -o "$BIN/e2e.test" k8s.io/kubernetes/test/e2e \
      && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$BIN/agnhost" k8s.io/kubernetes/test/images/agnhost \
      && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$BIN/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
    echo "$K8S_VERSION" > "$BIN/.e2e-version"
  fi
}

cert() { # name subject [san]
  local name=$1 subj=$2 san=${3:-}
  [ -f "$PKI/$name.crt" ] && return
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext=$PKI/$name.ext
  : > "$ext"
  [ -n "$san" ] && echo "subjectAltName=$san" >> "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}

pki() {
  mkdir -p "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=hivelet-test-ca" \
      -days 3650 -out "$PKI/ca.crt" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
  cert admin "/O=system:masters/CN=hivelet-admin"
  [ -f "$PKI/sa.key" ] || openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  [ -f "$PKI/sa.pub" ] || openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  cat > "$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: hivelet-test
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
contexts:
- name: hivelet-test
  context: {cluster: hivelet-test, user: admin}
current-context: hivelet-test
KC
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() { # name logfile cmd...
  local name=$1 logf=$2; shift 2
  running "$name" && return
  setsid "$@" >"$logf" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}

wait_ready() {
  for _ in $(seq 300); do
    if curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
      return
    fi
    running kube-apiserver || { log "kube-apiserver exited:"; tail -20 "$RUN/kube-apiserver.log" >&2; exit 1; }
    sleep 0.2
  done
  log "kube-apiserver not ready after 60 s:"; tail -20 "$RUN/kube-apiserver.log" >&2; exit 1
}

up() {
  "$(dirname "$0")/deps.sh" >&2
  build
  pki
  mkdir -p "$RUN" "$DATA/etcd"
  local etcd_data=$DATA/etcd
  if [ "${HIVELET_ETCD_TMPFS:-}" = 1 ] && ! running etcd; then
    rm -rf "$ETCD_TMPFS" && cp -a "$DATA/etcd" "$ETCD_TMPFS" && etcd_data=$ETCD_TMPFS
    echo "$ETCD_TMPFS" > "$RUN/etcd.tmpfs"
  fi
  log "starting etcd on 127.0.0.1:$ETCD_PORT (data in $etcd_data) and kube-apiserver on 127.0.0.1:$API_PORT"
  start etcd "$RUN/etcd.log" etcd --name hivelet --data-dir "$etcd_data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "hivelet=http://127.0.0.1:$((ETCD_PORT + 10))" --quota-backend-bytes 8589934592
  start kube-apiserver "$RUN/kube-apiserver.log" "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode Node,RBAC \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/12 --allow-privileged --endpoint-reconciler-type none \
    --max-requests-inflight 2000 --max-mutating-requests-inflight 1000
  wait_ready
  log "ready"
  echo "$KUBECONFIG_PATH"
}

down() {
  for name in kube-apiserver etcd; do
    if running "$name"; then
      log "stopping $name"
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      for _ in $(seq 100); do running "$name" || break; sleep 0.1; done
      running "$name" && kill -9 "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
  done
  if [ -f "$RUN/etcd.tmpfs" ]; then
    local tmp; tmp=$(cat "$RUN/etcd.tmpfs")
    log "copying etcd data back from $tmp"
    rm -rf "$DATA/etcd.new" && cp -a "$tmp" "$DATA/etcd.new" && rm -rf "$DATA/etcd" && mv "$DATA/etcd.new" "$DATA/etcd" && rm -rf "$tmp"
    rm -f "$RUN/etcd.tmpfs"
  fi
}

case "${1:-}" in
  build) build ;;
  build-kubelet) build_extra kubelet ;;
  build-cluster) build_extra kube-controller-manager kube-scheduler kubectl ;;
  build-e2e) build_e2e ;;
  up) up ;;
  down) down ;;
  wipe) down; rm -rf "$DATA/etcd"; log "etcd data removed" ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_PATH" ;;
  *) echo "usage: $0 build|up|down|wipe|env" >&2; exit 2 ;;
esac
