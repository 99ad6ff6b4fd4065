#!/usr/bin/env bash
# conformance.sh: the upstream e2e suite's [Conformance] tests (v1.37.2)
# against a hack/cluster.sh cluster, results in test/results/conformance.
#
#   NODE=hivelet|kpr|upstream   what the nodes run (default hivelet; see hack/cluster.sh up --kind)
#   FOCUS=regex                 which tests (default: the [Conformance] tests of sig-node,
#                               sig-storage, sig-apps, sig-cli and sig-network)
#   SKIP=regex                  default: [Serial] and [Disruptive] (they need the whole cluster)
#   PROCS=N                     parallel ginkgo processes (default 4)
#
# Builds e2e.test, agnhost and ginkgo once (cached, hack/k8s.sh build-e2e),
# the test images the suite names as local OCI images (there is no
# registry: agnhost, busybox, pause, nonroot and nonewprivs as upstream
# builds them, on busybox and with this machine's bash, nc, curl and dig;
# nginx is agnhost's HTTP server on port 80, nautilus and kitten busybox
# httpd serving their data.json), imports them into
# every node, runs the suite from the control plane's namespace, and
# writes the junit files to test/results/conformance/$NODE and the table
# to test/results/conformance/results.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${HIVELET_K8S_DIR:-/var/cache/hivelet-k8s}
BIN=$DIR/bin
CL=$DIR/cluster
NODE=${NODE:-hivelet}
FOCUS=${FOCUS:-'\[sig-(node|storage|apps|cli|network)\].*\[Conformance\]'}
SKIP=${SKIP:-'\[Serial\]|\[Disruptive\]'}
PROCS=${PROCS:-4}
RESULTS=$REPO/test/results/conformance
OUT=$RESULTS/$NODE
E2E=registry.k8s.io/e2e-test-images

log() { echo "conformance: $*" >&2; }

case "$NODE" in hivelet|kpr|upstream) ;; *) log "NODE=$NODE: want hivelet, kpr or upstream"; exit 2 ;; esac

"$REPO/hack/k8s.sh" build-e2e
if [ "$(cat "$CL/kind" 2>/dev/null)" != "$NODE" ]; then
  [ -d "$CL" ] && "$REPO/hack/cluster.sh" down
  "$REPO/hack/cluster.sh" up --kind "$NODE"
fi

log "building the suite's test images and importing them into every node"
img=$CL/images/e2e
mkdir -p "$img"
ctl=$CL/bin/clusterctl
# The helper as this checkout has it (a new file: the running forwarder
# keeps the old one).
(cd "$REPO" && CGO_ENABLED=0 go build -o "$ctl.new" ./test/clusterctl && mv -f "$ctl.new" "$ctl")
# agnhost's image adds a user and a group that tests look for.
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' > "$img/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' > "$img/group"
# Its alpine base has OpenBSD nc, curl and dig, which tests run; busybox's
# nc lacks their options: this machine's, with their libraries. Both it
# and busybox get bash as sh: Debian's busybox 1.35 sh runs its own
# applets first, whatever PATH holds, and (as dash does) drops variables
# whose names are not C identifiers, which the 1.37 busybox the suite
# names passes on (envFrom keys such as "data-1").
sh=(-bin /bin/sh=/bin/bash)
# The DNS tests resolve with dig and getent (glibc's, whose files and dns
# lookups are built into libc since 2.34: nsswitch.conf is all they need).
printf 'hosts: files dns\n' > "$img/nsswitch.conf"
resolvers=(-bin /usr/bin/dig=/usr/bin/dig -bin /usr/bin/getent=/usr/bin/getent -file "/etc/nsswitch.conf=$img/nsswitch.conf")
# agnhost's image carries a self-signed localhost certificate: porter
# serves TLS with it and the StatefulSet tests' readiness probe fetches
# /localhost.crt from test-webserver.
[ -f "$img/localhost.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" -keyout "$img/localhost.key" -out "$img/localhost.crt" 2>/dev/null
agnhost=(-file "/agnhost=$BIN/agnhost" -file "/agnhost-2=$BIN/agnhost" -file "/etc/passwd=$img/passwd" -file "/etc/group=$img/group"
  -file "/localhost.crt=$img/localhost.crt" -file "/localhost.key=$img/localhost.key"
  "${sh[@]}" "${resolvers[@]}" -bin /bin/nc=/usr/bin/nc -bin /usr/bin/curl=/usr/bin/curl)
"$ctl" image -o "$img/agnhost.tar" -ref "$E2E/agnhost:2.66.1" "${agnhost[@]}" -entrypoint /agnhost -cmd pause
"$ctl" image -o "$img/agnhost-prev.tar" -ref "$E2E/agnhost:2.55" "${agnhost[@]}" -entrypoint /agnhost -cmd pause
"$ctl" image -o "$img/busybox.tar" -ref "$E2E/busybox:1.37.0-2" "${sh[@]}" -cmd sh
# The DNS tests' second querier (glibc's resolver beside agnhost's musl).
"$ctl" image -o "$img/glibc-dns-testing.tar" -ref "$E2E/glibc-dns-testing:2.1.1" "${sh[@]}" "${resolvers[@]}" -cmd sh
# nonewprivs: a setuid-root program printing its effective uid.
(cd "$REPO" && CGO_ENABLED=0 go build -o "$img/nnp" ./test/images/nnp) && chmod 4755 "$img/nnp"
"$ctl" image -o "$img/nonewprivs.tar" -ref "$E2E/nonewprivs:1.4" -file "/usr/local/bin/nnp=$img/nnp" -entrypoint /usr/local/bin/nnp
# The update demo's images serve data.json on port 80 (busybox httpd).
for pic in nautilus kitten; do
  mkdir -p "$img/$pic" && printf '{\n  "image": "%s.jpg"\n}\n' "$pic" > "$img/$pic/data.json"
  "$ctl" image -o "$img/$pic.tar" -ref "$E2E/$pic:1.8" -file "/www/data.json=$img/$pic/data.json" \
    -cmd httpd -cmd -f -cmd -p -cmd 80 -cmd -h -cmd /www
done
"$ctl" image -o "$img/nonroot.tar" -ref "$E2E/nonroot:1.5" -cmd sh -user 1234
"$ctl" image -o "$img/pause.tar" -ref "registry.k8s.io/pause:3.10.2" -cmd sleep -cmd 2147483647
for v in 1.27.0-2 1.28.0-2; do
  "$ctl" image -o "$img/nginx-$v.tar" -ref "$E2E/nginx:$v" -file "/agnhost=$BIN/agnhost" \
    -entrypoint /agnhost -cmd netexec -cmd --http-port=80 -cmd --udp-port=-1
done
for f in "$img"/*.tar; do "$REPO/hack/cluster.sh" import "$f"; done

rm -rf "$OUT" && mkdir -p "$OUT"
echo "$(date -u +%Y-%m-%dT%H:%MZ), focus \`$FOCUS\`, skip \`$SKIP\`, $PROCS processes, $(cat "$CL/nodes.count") nodes" > "$OUT/run.txt"
log "running e2e.test: focus $FOCUS, skip $SKIP, $PROCS processes; junit in $OUT"
set +e
"$REPO/hack/cluster.sh" exec-hub "$BIN/ginkgo" --procs="$PROCS" --timeout=4h --no-color \
  --focus="$FOCUS" --skip="$SKIP" --output-dir="$OUT" --junit-report=junit_01.xml \
  "$BIN/e2e.test" -- --kubeconfig="$CL/admin-hub.kubeconfig" --provider=skeleton \
  --kubectl-path="$BIN/kubectl" --report-dir="$OUT" --dump-logs-on-failure=false \
  > "$OUT/e2e.log" 2>&1
rc=$?
set -e
"$CL/bin/clusterctl" report -dir "$RESULTS"
log "e2e.test exit $rc; $(grep -E '^(Ran|PASS|FAIL)' "$OUT/e2e.log" | tail -2 | tr '\n' ' ')"
log "results: $RESULTS/results.md (log: $OUT/e2e.log)"
