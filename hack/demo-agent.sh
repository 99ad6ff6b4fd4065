#!/usr/bin/env bash
# demo.sh: three "pods" (network namespaces running busybox httpd) behind the
# ClusterIP of examples/demo/web.yaml, load-balanced by hivelet's socket LB
# attached to a child cgroup this script creates. Everything it makes is
# removed on exit; nothing touches the machine's own cgroup or network.
set -euo pipefail
cd "$(dirname "$0")/.."

HIVELET=${HIVELET:-bin/hivelet}
VIP=10.96.0.10
N=30
TAG=hld$$
TMP=$(mktemp -d /tmp/hivelet-demo.XXXXXX)
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$CG2" ] || { echo "demo: no cgroup2 mount in /proc/mounts" >&2; exit 1; }
CG=$CG2/hivelet-demo-$$
BPFFS=$TMP/bpffs
CLIENT=$TAG-client
PIDS=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  step "cleaning up"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  "$HIVELET" agent --cleanup --bpffs "$BPFFS" --cgroup2 "$CG" 2>&1 | sed 's/^/  /'
  for ns in $(ip netns list | awk -v t="$TAG-" 'index($1, t) == 1 {print $1}'); do ip netns del "$ns"; done
  [ -d "$CG" ] && rmdir "$CG"
  rm -rf "$TMP"
  echo "  removed namespaces $TAG-*, cgroup $CG, $TMP"
}
trap cleanup EXIT

step "network: client namespace $CLIENT with a bridge, 3 pod namespaces behind it"
ip netns add "$CLIENT"
ip -n "$CLIENT" link set lo up
ip -n "$CLIENT" link add br0 type bridge
ip -n "$CLIENT" addr add 10.244.0.1/24 dev br0
ip -n "$CLIENT" link set br0 up
for i in 1 2 3; do
  ns=$TAG-pod-$i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$CLIENT" link add veth$i type veth peer name eth0 netns "$ns"
  ip -n "$CLIENT" link set veth$i master br0 up
  ip -n "$ns" addr add 10.244.0.1$i/24 dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via 10.244.0.1
  mkdir -p "$TMP/www-$i"
  echo "pod-$i" > "$TMP/www-$i/index.html"
  nsenter --net=/run/netns/"$ns" busybox httpd -f -p 8080 -h "$TMP/www-$i" &
  PIDS+=($!)
  echo "  pod-$i: 10.244.0.1$i:8080 answers \"pod-$i\""
done

step "manifests: Service demo/web (ClusterIP $VIP:80) and its EndpointSlice"
mkdir -p "$TMP/manifests"
cp examples/demo/web.yaml "$TMP/manifests/"
echo "  $TMP/manifests/web.yaml"

step "agent: socket LB attached to child cgroup $CG"
mkdir "$CG"
"$HIVELET" agent --manifests "$TMP/manifests" --bpffs "$BPFFS" --cgroup2 "$CG" --devices none \
  --healthz-bind-address 127.0.0.1:0 --metrics-bind-address 127.0.0.1:0 >"$TMP/agent.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  "$HIVELET" service list --bpffs "$BPFFS" 2>/dev/null | grep -q "$VIP:80/TCP.*=>" && break
  sleep 0.1
done
sed 's/^/  /' "$TMP/agent.log"

# curl_vip runs N requests from the client namespace, as a process inside
# the cgroup: socket hooks follow the cgroup, so join it before the netns.
curl_vip() {
  sh -c 'echo $$ > "$1/cgroup.procs"; exec nsenter --net=/run/netns/"$2" sh -c "
    for i in \$(seq $3); do curl -s --max-time 2 http://$4/ || echo FAILED; done"' _ "$CG" "$CLIENT" "$N" "$VIP" \
    | sort | uniq -c | sed 's/^/  /'
}

step "$N requests to http://$VIP/ from $CLIENT (how they spread over the backends)"
curl_vip

step "hivelet service list --bpffs $BPFFS"
"$HIVELET" service list --bpffs "$BPFFS" | sed 's/^/  /'

step "edit: pod-3 leaves the EndpointSlice; the agent picks the change up from the directory"
drop_pod3() { awk 'BEGIN{skip=0} /addresses: \[10.244.0.13\]/{skip=3} skip>0{skip--; next} {print}' "$1"; }
drop_pod3 examples/demo/web.yaml > "$TMP/web.yaml.new"
mv "$TMP/web.yaml.new" "$TMP/manifests/web.yaml"
for _ in $(seq 50); do
  [ "$("$HIVELET" service list --bpffs "$BPFFS" -o json | grep -c '"address"')" = 2 ] && break
  sleep 0.1
done
curl_vip
step "hivelet service list"
"$HIVELET" service list --bpffs "$BPFFS" | sed 's/^/  /'

METRICS=$(sed -n 's/.*msg="Serving metrics" addr=\([^ ]*\).*/\1/p' "$TMP/agent.log")
HEALTHZ=$(sed -n 's/.*msg="Serving healthz" addr=\([^ ]*\).*/\1/p' "$TMP/agent.log")
step "kube-proxy-style surfaces: http://$HEALTHZ/healthz and http://$METRICS/metrics"
echo "  healthz: $(curl -s "http://$HEALTHZ/healthz")"
curl -s "http://$METRICS/metrics" | grep -E '^hivelet_(service_frontends|service_backends|sync_proxy_rules_duration_seconds_count|bpf_map_entries)' | sed 's/^/  /'
