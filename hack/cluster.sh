#!/usr/bin/env bash
# cluster.sh: a real Kubernetes cluster on this machine whose nodes run
# only hivelet: an upstream v1.37.2 control plane (etcd, kube-apiserver
# with Node,RBAC and NodeRestriction, kube-controller-manager allocating
# podCIDRs, kube-scheduler) and N nodes, each in a network namespace of
# its own on a bridge with no route off the machine, each with its own
# containerd + runc, hivelet-cni, the hivelet agent (kube-proxy
# replacement: socket LB on the node's own cgroup, TC on its eth0, routes
# to the other nodes' pods) and hivelet-kubelet with a real node identity.
# CoreDNS runs on the cluster behind the kube-dns Service.
#
#   hack/cluster.sh up [--nodes N] [--kind K]   build what is missing (cached), start, wait until every node and CoreDNS is ready
#   hack/cluster.sh down             stop everything and remove every trace (netns, cgroups, mounts, bpffs pins, state)
#   hack/cluster.sh status           nodes and system pods
#   hack/cluster.sh kubectl ARGS...  kubectl against the cluster
#   hack/cluster.sh env              print `export KUBECONFIG=...` (kubectl from this machine's shell)
#   hack/cluster.sh exec-hub CMD...  run CMD in the control plane's namespace (it reaches nodes and pods)
#   hack/cluster.sh import ARCHIVE   import an OCI archive into every node's containerd
#   hack/cluster.sh agents off|on    stop the nodes' agent processes (a DaemonSet from deploy/ takes over), or start them again
#
# --kind says what runs on the nodes: hivelet (default: hivelet-kubelet,
# the hivelet agent, hivelet-cni), kpr (the upstream kubelet with the
# hivelet agent as kube-proxy replacement and hivelet-cni: how most users
# meet hivelet first) or upstream (the upstream kubelet, kube-proxy in
# iptables mode and the reference bridge CNI: the baseline).
#
# Layout: the "hub" namespace holds the bridge (10.250.0.1/24) and the
# control plane; node i is 10.250.0.(10+i). kubectl here goes through a
# forwarder on 127.0.0.1:$HIVELET_CLUSTER_PORT into the hub: this
# machine's own namespace gets no route and no address for any of it.
# Binaries are cached in $HIVELET_K8S_DIR (default /var/cache/hivelet-k8s);
# the cluster's state lives in $HIVELET_K8S_DIR/cluster and goes with `down`.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${HIVELET_K8S_DIR:-/var/cache/hivelet-k8s}
BIN=$DIR/bin
CL=$DIR/cluster
PKI=$CL/pki
RUN=$CL/run
K8S_VERSION=v1.37.2
COREDNS_VERSION=v1.15.0
HUB=hlc-hub
BRIDGE=hlc-br0
NET=10.250.0
API_IP=$NET.1
API_PORT=6443
LOCAL_PORT=${HIVELET_CLUSTER_PORT:-16500}
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/12
DNS_IP=10.96.0.10
PAUSE_REF=registry.k8s.io/pause:3.10
BUSYBOX_REF=hivelet.test/busybox:1
COREDNS_REF=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
ADMIN_KC=$CL/admin.kubeconfig       # from this machine, through the forwarder
HUB_KC=$CL/admin-hub.kubeconfig     # from inside the hub

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

cgroup2_root() { awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts; }

# --- build -----------------------------------------------------------------

build() { # kind
  "$REPO/hack/k8s.sh" build-cluster
  # kpr and upstream nodes run the upstream kubelet (built once, stamped).
  [ "$1" = hivelet ] || "$REPO/hack/k8s.sh" build-kubelet
  if [ ! -x "$BIN/coredns" ] || [ "$(cat "$BIN/.coredns-version" 2>/dev/null)" != "$COREDNS_VERSION" ]; then
    log "building CoreDNS $COREDNS_VERSION from the Go module proxy (once, cached in $BIN)"
    mkdir -p "$DIR/coredns"
    printf 'module hivelet.local/corednsbuild\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > "$DIR/coredns/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' > "$DIR/coredns/tools.go"
    (cd "$DIR/coredns" && GOFLAGS=-mod=mod go mod tidy >/dev/null && CGO_ENABLED=0 go build -o "$BIN/coredns" github.com/coredns/coredns)
    echo "$COREDNS_VERSION" > "$BIN/.coredns-version"
  fi
  log "building hivelet (make build) and the cluster helper"
  make -C "$REPO" -s build >/dev/null
  mkdir -p "$CL/bin"
  (cd "$REPO" && CGO_ENABLED=0 go build -o "$CL/bin/clusterctl" ./test/clusterctl)
  # The nodes run a copy: rebuilding the repository does not change a running cluster.
  # A new file, not a rewrite: the old one may be running.
  local b
  for b in hivelet hivelet-cni hivelet-kubelet; do
    cp "$REPO/bin/$b" "$CL/bin/.$b.new" && mv -f "$CL/bin/.$b.new" "$CL/bin/$b"
  done
}

images() {
  mkdir -p "$CL/images"
  local ctl=$CL/bin/clusterctl
  "$ctl" image -o "$CL/images/pause.tar" -ref "$PAUSE_REF" -cmd sleep -cmd 2147483647
  "$ctl" image -o "$CL/images/busybox.tar" -ref "$BUSYBOX_REF" -cmd sh
  "$ctl" image -o "$CL/images/coredns.tar" -ref "$COREDNS_REF" -file "/coredns=$BIN/coredns" -entrypoint /coredns
}

# --- certificates ----------------------------------------------------------

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

kubeconfig() { # file server cert-name
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: hivelet
  cluster: {server: "$2", certificate-authority: "$PKI/ca.crt"}
users:
- name: $3
  user: {client-certificate: "$PKI/$3.crt", client-key: "$PKI/$3.key"}
contexts:
- name: hivelet
  context: {cluster: hivelet, user: $3}
current-context: hivelet
KC
}

pki() {
  mkdir -p "$PKI"
  [ -f "$PKI/ca.crt" ] || openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" \
    -subj "/CN=hivelet-cluster-ca" -days 3650 -out "$PKI/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:$API_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=hivelet-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"   # the agent: kube-proxy's identity and RBAC (system:node-proxier)
  cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client"
  [ -f "$PKI/sa.key" ] || openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  [ -f "$PKI/sa.pub" ] || openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  local hub=https://$API_IP:$API_PORT
  kubeconfig "$ADMIN_KC" "https://127.0.0.1:$LOCAL_PORT" admin
  kubeconfig "$HUB_KC" "$hub" admin
  kubeconfig "$CL/controller-manager.kubeconfig" "$hub" controller-manager
  kubeconfig "$CL/scheduler.kubeconfig" "$hub" scheduler
  kubeconfig "$CL/kube-proxy.kubeconfig" "$hub" kube-proxy
}

# --- processes -------------------------------------------------------------

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start NAME NETNS CGROUP CMD...: a daemon in a network namespace (only:
# it shares this machine's mounts, as a node's daemons share the node's)
# and a cgroup, in a session of its own, logging to $RUN/NAME.log.
start() {
  local name=$1 ns=$2 cg=$3; shift 3
  running "$name" && return
  mkdir -p "$cg"
  setsid sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
    nsenter --net="/run/netns/$ns" -- "$@" > "$RUN/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}

stop() { # NAME...
  local name
  for name in "$@"; do
    if running "$name"; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      for _ in $(seq 100); do running "$name" || break; sleep 0.1; done
      running "$name" && kill -9 "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
  done
}

wait_for() { # what seconds cmd...
  local what=$1 end=$((SECONDS + $2)); shift 2
  while [ "$SECONDS" -lt "$end" ]; do
    "$@" >/dev/null 2>&1 && return
    sleep 0.5
  done
  die "$what: not within $2 s (logs in $RUN)"
}

kc() { "$BIN/kubectl" --kubeconfig "$ADMIN_KC" "$@"; }

# --- control plane ---------------------------------------------------------

hub_up() {
  ip netns add "$HUB" 2>/dev/null || true
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link show "$BRIDGE" >/dev/null 2>&1 || ip -n "$HUB" link add "$BRIDGE" type bridge
  ip -n "$HUB" addr replace "$API_IP/24" dev "$BRIDGE"
  ip -n "$HUB" link set "$BRIDGE" up
  # The hub routes between nodes' pod ranges where the nodes do not
  # (the upstream kind) and to them from the control plane.
  ip netns exec "$HUB" sysctl -qw net.ipv4.ip_forward=1
}

control_plane_up() {
  local cg; cg=$(cgroup2_root)/hlc-control-plane
  mkdir -p "$CL/etcd"
  log "starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler in namespace $HUB ($API_IP)"
  start etcd "$HUB" "$cg" etcd --name hivelet --data-dir "$CL/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster hivelet=http://127.0.0.1:2380
  start kube-apiserver "$HUB" "$cg" "$BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 --bind-address "$API_IP" --advertise-address "$API_IP" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged
  # The forwarder listens here, in this machine's namespace, and dials in the hub's.
  setsid "$CL/bin/clusterctl" forward -listen "127.0.0.1:$LOCAL_PORT" -netns "/run/netns/$HUB" -to "$API_IP:$API_PORT" \
    > "$RUN/forward-api.log" 2>&1 < /dev/null &
  echo $! > "$RUN/forward-api.pid"
  wait_for "kube-apiserver ready" 120 kc get --raw /readyz
  start kube-controller-manager "$HUB" "$cg" "$BIN/kube-controller-manager" \
    --kubeconfig "$CL/controller-manager.kubeconfig" --authentication-kubeconfig "$CL/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CL/controller-manager.kubeconfig" --bind-address 127.0.0.1 --leader-elect=false \
    --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" --use-service-account-credentials \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key"
  start kube-scheduler "$HUB" "$cg" "$BIN/kube-scheduler" \
    --kubeconfig "$CL/scheduler.kubeconfig" --authentication-kubeconfig "$CL/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CL/scheduler.kubeconfig" --bind-address 127.0.0.1 --leader-elect=false
  # The API server's kubelet client is authorized as kubeadm sets it up.
  kc apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kube-apiserver:kubelet-api-admin"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
---
# The agent runs as kube-proxy (system:node-proxier) and also serves the
# hostPorts of its node's pods.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "hivelet:agent"}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "hivelet:agent"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "hivelet:agent"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-proxy"}]
YAML
}

# --- nodes -----------------------------------------------------------------

node_name() { echo "hivelet-node$1"; }
node_ip() { echo "$NET.$((10 + $1))"; }

node_up() { # index
  local i=$1 name ns ip nd cg
  name=$(node_name "$i"); ns=hlc-node$i; ip=$(node_ip "$i"); nd=$CL/nodes/node$i
  cg=$(cgroup2_root)/hlc-node$i
  local kubelet=hivelet-kubelet
  [ "$(kind)" = hivelet ] || kubelet="the upstream kubelet"
  log "node $name: namespace $ns ($ip), containerd, $kubelet"
  mkdir -p "$nd"/{cni-bin,net.d,ipam,kubelet,logs,manifests} "$cg"
  ip netns add "$ns" 2>/dev/null || true
  ip -n "$ns" link set lo up
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip -n "$HUB" link add "hlc-n$i" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "hlc-n$i" master "$BRIDGE" up
  fi
  ip -n "$ns" addr replace "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route replace default via "$API_IP"
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  cert "node$i" "/O=system:nodes/CN=system:node:$name"
  cert "node$i-serving" "/CN=$name" "IP:$ip,DNS:$name"
  kubeconfig "$nd/kubelet.kubeconfig" "https://$API_IP:$API_PORT" "node$i"
  cat > "$nd/containerd.toml" <<TOML
version = 2
root = "$nd/containerd"
state = "/run/hlc-node$i/containerd"
[grpc]
  address = "/run/hlc-node$i/containerd.sock"
[ttrpc]
  address = "/run/hlc-node$i/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  restrict_oom_score_adj = true
  # Pod network namespaces under the node's state, not this machine's
  # /run/netns: down removes them even when the node died before it
  # could remove its pods.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$nd/cni-bin"
    conf_dir = "$nd/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
  mkdir -p "/run/hlc-node$i"
  start "node$i-containerd" "$ns" "$cg/daemons" containerd --config "$nd/containerd.toml"
  local sock=/run/hlc-node$i/containerd.sock
  wait_for "containerd of $name" 60 ctr --address "$sock" version
  for img in "$CL"/images/*.tar; do
    ctr --address "$sock" -n k8s.io images import "$img" >/dev/null
  done
  echo "nameserver $API_IP" > "$nd/resolv.conf"
  if [ "$(kind)" != hivelet ]; then
    upstream_kubelet "$i"
    return
  fi
  start "node$i-kubelet" "$ns" "$cg/daemons" "$CL/bin/hivelet-kubelet" \
    --kubeconfig "$nd/kubelet.kubeconfig" --hostname-override "$name" --node-ip "$ip" \
    --container-runtime-endpoint "unix://$sock" --root-dir "$nd/kubelet" --pod-logs-dir "$nd/logs" \
    --pod-manifest-path "$nd/manifests" --cgroup-root "/hlc-node$i" \
    --client-ca-file "$PKI/ca.crt" --authentication-token-webhook --authorization-mode Webhook \
    --tls-cert-file "$PKI/node$i-serving.crt" --tls-private-key-file "$PKI/node$i-serving.key" \
    --cluster-dns "$DNS_IP" --cluster-domain cluster.local --resolv-conf "$nd/resolv.conf"
}

# upstream_kubelet NODE: the upstream kubelet with the same identity,
# certificates and authorization as hivelet-kubelet gets.
upstream_kubelet() {
  local i=$1 name ns ip nd cg c p
  name=$(node_name "$i"); ns=hlc-node$i; ip=$(node_ip "$i"); nd=$CL/nodes/node$i
  cg=$(cgroup2_root)/hlc-node$i
  # It wants its cgroup root in every v1 hierarchy (a new cpuset needs
  # CPUs and memory nodes before anything can join it).
  for c in /sys/fs/cgroup/*; do
    [ "$(basename "$c")" = unified ] && continue
    p=$c/hlc-node$i
    mkdir -p "$p" 2>/dev/null || continue
    if [ "$(basename "$c")" = cpuset ]; then
      cat "$c/cpuset.cpus" > "$p/cpuset.cpus"; cat "$c/cpuset.mems" > "$p/cpuset.mems"
    fi
  done
  cat > "$nd/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /hlc-node$i
containerRuntimeEndpoint: unix:///run/hlc-node$i/containerd.sock
staticPodPath: $nd/manifests
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: "$PKI/ca.crt"}}
authorization: {mode: Webhook}
tlsCertFile: $PKI/node$i-serving.crt
tlsPrivateKeyFile: $PKI/node$i-serving.key
readOnlyPort: 0
failSwapOn: false
enforceNodeAllocatable: []
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: $nd/resolv.conf
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
podLogsDir: $nd/logs
YAML
  start "node$i-kubelet" "$ns" "$cg/daemons" "$BIN/kubelet" --config "$nd/kubelet.yaml" \
    --kubeconfig "$nd/kubelet.kubeconfig" --hostname-override "$name" --node-ip "$ip" --root-dir "$nd/kubelet"
}

# node_network NODE: once the controller manager gave the node its pod
# CIDR: hivelet-cni for it, the agent, and the hub's route to it.
node_network() {
  local i=$1 name ns ip nd cg cidr
  name=$(node_name "$i"); ns=hlc-node$i; ip=$(node_ip "$i"); nd=$CL/nodes/node$i
  cg=$(cgroup2_root)/hlc-node$i
  wait_for "Node $name registered with a podCIDR" 120 sh -c "[ -n \"\$('$BIN/kubectl' --kubeconfig '$ADMIN_KC' get node '$name' -o jsonpath='{.spec.podCIDR}')\" ]"
  cidr=$(kc get node "$name" -o jsonpath='{.spec.podCIDR}')
  if [ "$(kind)" = upstream ]; then
    upstream_network "$i" "$cidr"
    return
  fi
  log "node $name: pod CIDR $cidr: hivelet-cni and the agent"
  "$CL/bin/hivelet" cni install --bin-dir "$nd/cni-bin" --conf-dir "$nd/net.d" --pod-cidr "$cidr" \
    --plugin "$CL/bin/hivelet-cni" --bpffs "/sys/fs/bpf/hlc-node$i" --ipam-data-dir "$nd/ipam" >/dev/null
  ln -sf /usr/lib/cni/loopback "$nd/cni-bin/loopback"
  node_agent "$i"
  # The hub is the cluster's outside world: it reaches pods as a router would.
  ip -n "$HUB" route replace "$cidr" via "$ip"
}

# node_agent NODE: the agent as a process of the node, as kube-proxy
# replacement (`agents off` stops it for the DaemonSet to take over).
node_agent() {
  local i=$1 name ns ip cg
  name=$(node_name "$i"); ns=hlc-node$i; ip=$(node_ip "$i"); cg=$(cgroup2_root)/hlc-node$i
  start "node$i-agent" "$ns" "$cg/daemons" "$CL/bin/hivelet" agent \
    --kubeconfig "$CL/kube-proxy.kubeconfig" --hostname-override "$name" --node-ip "$ip" \
    --bpffs "/sys/fs/bpf/hlc-node$i" --cgroup2 "$cg" --devices eth0 --pod-routes native
}

# agents on|off: start or stop the nodes' agent processes. Off, the pins
# stay and Services keep working; a DaemonSet's agent (deploy/) adopts them.
agents() {
  local n i; n=$(nodes_list)
  [ "$(kind)" = upstream ] && die "agents: the upstream kind runs kube-proxy, not the agent"
  for i in $(seq "$n"); do
    case "${1:-}" in
      off) stop "node$i-agent" ;;
      on) running "node$i-agent" || node_agent "$i" ;;
      *) die "agents takes on or off" ;;
    esac
  done
}

# upstream_network NODE CIDR: the reference bridge CNI and kube-proxy
# (iptables); the hub routes between the nodes' pod ranges.
upstream_network() {
  local i=$1 cidr=$2 name ns ip nd cg p
  name=$(node_name "$i"); ns=hlc-node$i; ip=$(node_ip "$i"); nd=$CL/nodes/node$i
  cg=$(cgroup2_root)/hlc-node$i
  log "node $name: pod CIDR $cidr: bridge CNI and kube-proxy"
  for p in bridge host-local portmap loopback; do ln -sf "/usr/lib/cni/$p" "$nd/cni-bin/$p"; done
  cat > "$nd/net.d/10-bridge.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "hlc-bridge", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$nd/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  start "node$i-proxy" "$ns" "$cg/daemons" "$BIN/kube-proxy" --kubeconfig "$CL/kube-proxy.kubeconfig" \
    --hostname-override "$name" --cluster-cidr "$CLUSTER_CIDR" --proxy-mode iptables \
    --conntrack-max-per-core 0 --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  ip -n "$HUB" route replace "$cidr" via "$ip"
}

coredns_up() {
  log "CoreDNS $COREDNS_VERSION as a Deployment behind kube-dns ($DNS_IP)"
  kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_REF
        imagePullPolicy: IfNotPresent
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        - {containerPort: 9153, name: metrics, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          readOnlyRootFilesystem: true
        livenessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 10, periodSeconds: 10}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes:
      - name: config
        configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
YAML
}

nodes_list() { cat "$CL/nodes.count" 2>/dev/null || echo 0; }
kind() { cat "$CL/kind" 2>/dev/null || echo hivelet; }

up() {
  local n=2 k=hivelet
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) n=$2; shift 2 ;;
      --nodes=*) n=${1#*=}; shift ;;
      --kind) k=$2; shift 2 ;;
      --kind=*) k=${1#*=}; shift ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  [[ "$n" =~ ^[1-9]$ ]] || die "up: --nodes takes 1 to 9"
  case "$k" in hivelet|kpr|upstream) ;; *) die "up: --kind takes hivelet, kpr or upstream" ;; esac
  [ "$(id -u)" -eq 0 ] || die "run as root: it makes network namespaces, cgroups and mounts"
  "$REPO/hack/deps.sh" >&2
  if [ -f "$CL/nodes.count" ] && { [ "$(nodes_list)" != "$n" ] || [ "$(kind)" != "$k" ]; }; then
    die "a cluster of $(nodes_list) $(kind) nodes is up: hack/cluster.sh down first"
  fi
  build "$k"
  mkdir -p "$RUN"
  echo "$n" > "$CL/nodes.count"
  echo "$k" > "$CL/kind"
  images
  pki
  hub_up
  control_plane_up
  for i in $(seq "$n"); do node_up "$i"; done
  for i in $(seq "$n"); do node_network "$i"; done
  coredns_up
  log "waiting for every node Ready and CoreDNS available"
  wait_for "nodes Ready" 180 kc wait --for=condition=Ready node --all --timeout=1s
  wait_for "CoreDNS available" 180 kc -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s
  kc get nodes -o wide >&2
  log "up: $n $k nodes. kubectl: hack/cluster.sh kubectl ..., or: $(env_line)"
}

env_line() { echo "export KUBECONFIG=$ADMIN_KC"; }

down() {
  [ -d "$CL" ] || { log "no cluster"; return; }
  local n i cg2; n=$(nodes_list); cg2=$(cgroup2_root)
  for i in $(seq "$n"); do
    stop "node$i-kubelet" "node$i-agent" "node$i-proxy"
    if running "node$i-containerd"; then
      log "node$i: removing its pods through CRI"
      "$CL/bin/clusterctl" cri-clean -endpoint "unix:///run/hlc-node$i/containerd.sock" >&2 || true
    fi
    stop "node$i-containerd"
    pkill -KILL -f "containerd-shim.* -address /run/hlc-node$i/containerd.sock" 2>/dev/null || true
    [ -f "$cg2/hlc-node$i/cgroup.kill" ] && echo 1 > "$cg2/hlc-node$i/cgroup.kill" || true
    # The agent leaves its pins for a restart to adopt; down means gone.
    if [ -d "/sys/fs/bpf/hlc-node$i" ]; then
      "$CL/bin/hivelet" agent --cleanup --bpffs "/sys/fs/bpf/hlc-node$i" >/dev/null 2>&1 || true
      rm -rf "/sys/fs/bpf/hlc-node$i"
    fi
  done
  stop forward-api kube-scheduler kube-controller-manager kube-apiserver etcd
  # Mounts beneath the cluster's state (overlays, volumes, pod netns
  # binds), deepest first, then the namespaces, cgroups and files.
  awk -v a="$CL/" -v b="/run/hlc-node" '$5 ~ "^" a || $5 ~ "^" b {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  for i in $(seq "$n"); do
    ip netns del "hlc-node$i" 2>/dev/null || true
    rm -rf "/run/hlc-node$i"
  done
  ip netns del "$HUB" 2>/dev/null || true
  for i in $(seq "$n") control-plane; do
    local name=hlc-node$i
    [ "$i" = control-plane ] && name=hlc-control-plane
    for d in "$cg2/$name" /sys/fs/cgroup/*/"$name"; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done
  rm -rf "$CL"
  log "down: cluster removed"
}

status() {
  [ -f "$CL/nodes.count" ] || { log "no cluster (hack/cluster.sh up)"; return 1; }
  local p
  for p in "$RUN"/*.pid; do
    p=$(basename "$p" .pid)
    if running "$p"; then echo "$p: running"; else echo "$p: NOT RUNNING (log: $RUN/$p.log)"; fi
  done
  kc get nodes -o wide
  kc get pods -A -o wide
}

import() {
  local n i; n=$(nodes_list)
  for i in $(seq "$n"); do
    ctr --address "/run/hlc-node$i/containerd.sock" -n k8s.io images import "$@" >/dev/null
  done
}

main() {
local cmd=${1:-}
[ $# -gt 0 ] && shift
  case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  status) status ;;
  kubectl) kc "$@" ;;
  env) env_line ;;
  exec-hub) exec nsenter --net="/run/netns/$HUB" -- "$@" ;;
  import) import "$@" ;;
  agents) agents "$@" ;;
  *) echo "usage: $0 up [--nodes N] | down | status | kubectl ARGS... | env | exec-hub CMD... | import ARCHIVE | agents on|off" >&2; exit 2 ;;
esac
}

# One line, read whole before it runs: editing this file while a command
# runs cannot make bash read on into the new text.
main "$@"; exit
