#!/usr/bin/env bash
# demo.sh: a whole hivelet node, standalone (no API server). containerd
# and `hivelet node` run in a node network namespace this script makes;
# two replicas of a web server run as static pods behind a Service from a
# manifests directory, whose endpoints the agent finds among the node's
# pods. Requests from the host and from a pod spread over both; one pod is
# replaced and the node restarted while both clients keep asking; then
# everything is removed. Nothing touches the machine's own cgroup or
# network: the socket hooks sit on a child cgroup, the pods' veths in the
# node namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

HIVELET=${HIVELET:-bin/hivelet}
VIP=10.96.0.10
N=30
TAG=hln$$
# Short: containerd's socket path must stay under 108 bytes.
TMP=$(mktemp -d /tmp/hln.XXXXXX)
NODE=$TAG-node
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$CG2" ] || { echo "demo: no cgroup2 mount in /proc/mounts" >&2; exit 1; }
CGNAME=hivelet-demo-$$
CG=$CG2/$CGNAME
SOCK=$TMP/c.sock
BUSYBOX=hivelet.demo/busybox:1
PAUSE=hivelet.demo/pause:1
CONTAINERD_PID=
NODE_PID=
HOST_LOOP_PID=
# The pods' network namespaces are containerd's (cni-*): those that are
# new when the demo ends are its own.
NETNS_BEFORE=$(ip netns list | awk '{print $1}' | sort)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
indent() { sed 's/^/  /'; }
innode() { nsenter --net=/run/netns/"$NODE" "$@"; }

cleanup() {
  set +e
  step "cleaning up"
  [ -n "$HOST_LOOP_PID" ] && kill "$HOST_LOOP_PID" 2>/dev/null
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    # The kubelet stops the pods whose manifests went, the agent serves
    # on meanwhile: then the node stops.
    rm -f "$TMP"/static/*.yaml
    for _ in $(seq 100); do
      [ -z "$(ctr --address "$SOCK" -n k8s.io tasks list -q 2>/dev/null)" ] && break
      sleep 0.1
    done
    kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null
  fi
  "$HIVELET" agent --cleanup --bpffs "$TMP/bpffs" 2>&1 | indent
  [ -d "$CG" ] && echo 1 > "$CG/cgroup.kill" 2>/dev/null
  if [ -n "$CONTAINERD_PID" ]; then kill "$CONTAINERD_PID"; wait "$CONTAINERD_PID" 2>/dev/null; fi
  pkill -KILL -f "containerd-shim.* -address $SOCK" 2>/dev/null
  grep "$TMP" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l
  for ns in $(ip netns list | awk '{print $1}' | sort | comm -13 <(echo "$NETNS_BEFORE") -); do
    case $ns in "$TAG"-*|cni-*) ip netns del "$ns" 2>/dev/null ;; esac
  done
  for d in "$CG" /sys/fs/cgroup/*/"$CGNAME"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$TMP"
  echo "  removed the node namespace $NODE, the pods, containerd's state, cgroup $CGNAME and $TMP"
}
trap cleanup EXIT

step "images: busybox (the web server and the client) and pause, built from this machine's static busybox"
go run ./hack/image --busybox sh --ref "$BUSYBOX" --out "$TMP/busybox.tar" | indent
go run ./hack/image --busybox "sleep 2147483647" --ref "$PAUSE" --out "$TMP/pause.tar" | indent

step "CNI: hivelet-cni for the pod range 10.244.9.0/24"
"$HIVELET" cni install --bin-dir "$TMP/cni-bin" --conf-dir "$TMP/net.d" --pod-cidr 10.244.9.0/24 \
  --plugin bin/hivelet-cni --standalone | indent
ln -s /usr/lib/cni/loopback "$TMP/cni-bin/loopback"
sed -i "s|\"ipam\": {|\"ipam\": {\"dataDir\": \"$TMP/ipam\",|" "$TMP/net.d/05-hivelet.conflist"

step "node: namespace $NODE (address 192.0.2.10), containerd serving CRI on $SOCK"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip -n "$NODE" addr add 192.0.2.10/32 dev lo
cat > "$TMP/containerd.toml" <<EOF
version = 2
root = "$TMP/root"
state = "$TMP/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$TMP/cni-bin"
    conf_dir = "$TMP/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
innode containerd --config "$TMP/containerd.toml" >"$TMP/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 100); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
for img in busybox pause; do ctr --address "$SOCK" -n k8s.io images import "$TMP/$img.tar" | indent; done

step "manifests: Service demo/web (ClusterIP $VIP:80, selector app=web) and the static pods web-1 and web-2"
mkdir -p "$TMP/static" "$TMP/services" "$TMP/out"
cat > "$TMP/services/web.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: $VIP
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
EOF
web_pod() {
  # Written aside and renamed: the kubelet never reads half a file.
  cat > "$TMP/static/.$1.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: demo, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: httpd
    image: $BUSYBOX
    command: [sh, -c, "mkdir -p /www && echo $1 > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
    lifecycle: {preStop: {sleep: {seconds: 2}}}
EOF
  mv "$TMP/static/.$1.yaml" "$TMP/static/$1.yaml"
}
web_pod web-1
web_pod web-2
sed 's/^/  /' "$TMP/services/web.yaml"

start_node() {
  # nsenter itself, not a function in a subshell: its PID is the node's.
  nsenter --net=/run/netns/"$NODE" "$HIVELET" node --pod-manifest-path "$TMP/static" --manifests "$TMP/services" \
    --container-runtime-endpoint "unix://$SOCK" --hostname-override demo-node --node-ip 192.0.2.10 \
    --root-dir "$TMP/kubelet" --pod-logs-dir "$TMP/logs" --cgroup-root "/$CGNAME" --port 0 \
    --eviction-hard 'memory.available<1Mi,nodefs.available<1%,imagefs.available<1%' \
    --cgroup2 "$CG" --bpffs "$TMP/bpffs" --devices none>>"$TMP/node.log" 2>&1 &
  NODE_PID=$!
}
backends() {
  { "$HIVELET" service list --bpffs "$TMP/bpffs" -o json 2>/dev/null || true; } | { grep -o '"address": *"[^"]*"' || true; } |
    sort | tr -d ' "' | sed 's/address://' | tr '\n' ' '
}
wait_backends() { # wait_backends N [not-these]
  for _ in $(seq 300); do
    b=$(backends)
    [ "$(wc -w <<<"$b")" = "$1" ] && [ "$b" != "${2:-}" ] && return 0
    sleep 0.1
  done
  echo "demo: the node did not reach $1 backends; its log, and containerd's errors:" >&2
  tail -20 "$TMP/node.log" >&2; grep -E 'level=(error|fatal)' "$TMP/containerd.log" | tail -5 >&2; exit 1
}

step "hivelet node: kubelet + agent in one process (socket LB on child cgroup $CG)"
mkdir "$CG"
start_node
wait_backends 2
grep -E 'kubelet-lite running|Socket LB attached|msg=Synced.*full=true' "$TMP/node.log" | indent
"$HIVELET" service list --bpffs "$TMP/bpffs" | indent

# from_host runs N requests as a process of the node namespace inside the
# cgroup: socket hooks follow the cgroup, so join it before the netns.
from_host() {
  sh -c 'echo $$ > "$1/cgroup.procs"; exec nsenter --net=/run/netns/"$2" sh -c "
    for i in \$(seq $3); do curl -s --max-time 2 http://$4/ || echo FAILED; done"' _ "$CG" "$NODE" "$N" "$VIP" \
    | sort | uniq -c | indent
}

step "$N requests from the host to http://$VIP/ (how they spread over the pods)"
from_host
step "a client pod starts, looping on http://$VIP/ every 50 ms; its first $N answers"
# One request every 50 ms, its answer or FAIL on a line, until told to
# stop; then it idles (a container that ended would be started again).
LOOP='while [ ! -e /out/stop ]; do timeout 2 wget -q -O- http://'$VIP'/ 2>/dev/null || echo FAIL; sleep 0.05; done >> /out/pod.log; exec sleep 2147483647'
cat > "$TMP/static/.client.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: out, hostPath: {path: $TMP/out}}]
  containers:
  - name: loop
    image: $BUSYBOX
    command: [sh, -c, "$LOOP"]
    volumeMounts: [{name: out, mountPath: /out}]
EOF
mv "$TMP/static/.client.yaml" "$TMP/static/client.yaml"

for _ in $(seq 100); do [ "$(cat "$TMP/out/pod.log" 2>/dev/null | wc -l)" -ge "$N" ] && break; sleep 0.1; done
head -n "$N" "$TMP/out/pod.log" | sort | uniq -c | indent

step "a client on the host loops (every 50 ms) beside the client pod"
sh -c 'echo $$ > "$1/cgroup.procs"; exec nsenter --net=/run/netns/"$2" sh -c "
  while [ ! -e $3/stop ]; do curl -sf --max-time 2 http://$4/ || echo FAIL; sleep 0.05; done > $3/host.log"' _ "$CG" "$NODE" "$TMP/out" "$VIP" &
HOST_LOOP_PID=$!
sleep 1

step "web-1 is removed and web-3 takes its place while both clients loop"
before=$(backends)
rm "$TMP/static/web-1.yaml"
web_pod web-3
wait_backends 2 "$before"
echo "  backends $before-> $(backends)"

step "the node is restarted under traffic (pods and pinned maps carry on meanwhile)"
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true
echo "  stopped; $(wc -l <"$TMP/out/host.log") host requests so far"
sleep 1
lines=$(wc -l <"$TMP/node.log")
start_node
# The agent's first sync waits for the kubelet to know its pods' readiness.
for _ in $(seq 300); do tail -n +"$((lines + 1))" "$TMP/node.log" | grep -q 'msg=Synced.*full=true' && break; sleep 0.1; done
tail -n +"$((lines + 1))" "$TMP/node.log" | grep -E 'msg=Synced.*full=true' | indent
sleep 2
echo "  restarted; backends $(backends)"

touch "$TMP/out/stop"
wait "$HOST_LOOP_PID" || true
HOST_LOOP_PID=
sleep 0.5
step "what the clients saw while the pod was replaced and the node restarted"
lost=0
for f in host pod; do
  total=$(wc -l <"$TMP/out/$f.log")
  failed=$(grep -c FAIL "$TMP/out/$f.log" || true)
  lost=$((lost + failed))
  printf '  %-4s client: %4d requests, %d failed; answers: %s\n' "$f" "$total" "$failed" \
    "$(grep -v FAIL "$TMP/out/$f.log" | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"
done
if [ "$lost" -gt 0 ]; then
  echo "demo: $lost requests failed; the node log is below" >&2
  tail -40 "$TMP/node.log" >&2
  exit 1
fi
