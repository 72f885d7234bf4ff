#!/usr/bin/env bash
# Strata across machines, on one machine (docs/cluster.md, "The demo"): three etcd members and
# three Strata nodes a, b and c, each with its own runtime and state dirs, B's fs also on loopback
# TCP with a certificate of the cluster CA, all under one temp dir. Then the cross-node flow:
# a token issued on A is used on B and C; A reads a 100 MiB file of B's over TLS (sha256 on both
# sides); C revokes A's token; A and B refuse it. Prints the figures, and stops every process it
# started (by pid) and removes its temp dir on exit.
#
#   bash scripts/cluster_demo.sh
#
# Needs Debian's etcd-server (/usr/bin/etcd; ETCD_BIN names another), openssl, ps, and this repo's
# `deno task`. DEMO_MIB sets the size of the file read across nodes (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

# Each node's settings are given below; none comes from the caller's environment.
for v in $(compgen -e | grep '^STRATA_' || true); do unset "$v"; done
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
MIB=${DEMO_MIB:-100}
CLUSTER=demo
NODES=(a b c)

say() { printf '%s\n' "$*"; }
step() { printf '== %s\n' "$*"; }
fail() {
  printf 'cluster_demo: FAILED: %s\n' "$*" >&2
  exit 1
}
ms_now() { date +%s%3N; }

[ -x "$ETCD_BIN" ] || fail "etcd not found at $ETCD_BIN: apt-get install etcd-server (or set ETCD_BIN)"
command -v openssl > /dev/null || fail "openssl not found (strata-ctl cluster init makes the CA with it)"

DEMO=$(mktemp -d /tmp/strata-cluster-demo-XXXXXX)
STARTED=() # pids of the Strata processes started here: each node's `deno task start`, the probe
ETCD_PIDS=() # pids of the etcd members

# Every process started here and their descendants, children first.
tree() {
  local p
  for p in $(ps -o pid= --ppid "$1" 2> /dev/null); do tree "$p"; done
  echo "$1"
}
# Stops the processes `$@` and their descendants: SIGTERM, then SIGKILL after $WAIT_S s (10).
stop_pids() {
  local all=() p i
  for p in "$@"; do mapfile -t -O "${#all[@]}" all < <(tree "$p"); done
  [ "${#all[@]}" -gt 0 ] || return 0
  kill -TERM "${all[@]}" 2> /dev/null || true
  for i in $(seq "$((${WAIT_S:-10} * 10))"); do
    local left=0
    for p in "${all[@]}"; do kill -0 "$p" 2> /dev/null && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${all[@]}" 2> /dev/null || true
}
# Drops pids `$@` from STARTED once they are stopped (a pid is not signalled after it is gone).
forget() {
  local keep=() p q
  for p in "${STARTED[@]}"; do
    for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
    keep+=("$p")
  done
  STARTED=("${keep[@]}")
}
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  local all=() p
  for p in "${STARTED[@]}" "${ETCD_PIDS[@]}"; do mapfile -t -O "${#all[@]}" all < <(tree "$p"); done
  # The nodes first: each registry revokes its etcd lease as it stops, which needs etcd.
  [ "${#STARTED[@]}" -gt 0 ] && stop_pids "${STARTED[@]}"
  # A leader whose peers are gone tries to hand over for seconds: killed after 1 s.
  [ "${#ETCD_PIDS[@]}" -gt 0 ] && WAIT_S=1 stop_pids "${ETCD_PIDS[@]}"
  wait 2> /dev/null || true
  rm -rf "$DEMO"
  # What was stopped, so a caller can check that none is left.
  [ "${#all[@]}" -gt 0 ] && say "pids: ${all[*]}"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: 2 per etcd member (client, peer), 1 for B's fs.
read -r -a PORTS <<< "$(deno eval '
  const ls = Array.from({ length: 7 }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  console.log(ls.map((l) => l.addr.port).join(" "));
  for (const l of ls) l.close();')"
ENDPOINTS=""
INITIAL=""
for i in 0 1 2; do
  ENDPOINTS+="${ENDPOINTS:+,}http://127.0.0.1:${PORTS[$((2 * i))]}"
  INITIAL+="${INITIAL:+,}e$i=http://127.0.0.1:${PORTS[$((2 * i + 1))]}"
done
FS_B=${PORTS[6]}

T0=$(ms_now)
step "etcd: three members on 127.0.0.1 ($ENDPOINTS)"
for i in 0 1 2; do
  "$ETCD_BIN" --name "e$i" --data-dir "$DEMO/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:${PORTS[$((2 * i))]}" \
    --advertise-client-urls "http://127.0.0.1:${PORTS[$((2 * i))]}" \
    --listen-peer-urls "http://127.0.0.1:${PORTS[$((2 * i + 1))]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PORTS[$((2 * i + 1))]}" \
    --initial-cluster "$INITIAL" --initial-cluster-state new \
    --initial-cluster-token "strata-demo-$$" > "$DEMO/etcd-e$i.log" 2>&1 &
  ETCD_PIDS+=($!)
done
# Every member reports healthy once the cluster has a leader.
deno eval "
  const urls = '$ENDPOINTS'.split(',').map((u) => u + '/health');
  const healthy = (u) => fetch(u).then((r) => r.text(), () => '').then((t) => t.includes('\"true\"'));
  for (const until = Date.now() + 15000; Date.now() < until;) {
    if ((await Promise.all(urls.map(healthy))).every(Boolean)) Deno.exit(0);
    await new Promise((r) => setTimeout(r, 100));
  }
  Deno.exit(1);" || fail "etcd did not become healthy in 15 s (logs: $DEMO/etcd-e*.log)"

# strata-ctl and `deno task start` of node $1 (the launcher reads STRATA_* variables).
node_env() {
  local n=$1
  printf '%s\n' \
    "STRATA_RUNTIME_DIR=$DEMO/$n/rt" "STRATA_STATE_DIR=$DEMO/$n/state" "STRATA_NODE_ID=$n" \
    "STRATA_FS_ROOTS=$DEMO/$n/export" "STRATA_CLUSTER=$CLUSTER" \
    "STRATA_ETCD_ENDPOINTS=$ENDPOINTS" "STRATA_CLUSTER_ROOT=$DEMO/op/root.pub" \
    "STRATA_CLUSTER_CA=$DEMO/op/ca.pem"
}
# strata-ctl on node $1, run from folder $2 (its only writable folder), args after.
ctl_in() {
  local n=$1 dir=$2
  shift 2
  # With peers to call, ctl presents the node's certificate (mutual TLS between nodes).
  local tls=()
  [ -n "${PEERS:-}" ] && tls=("STRATA_TLS_CERT=$DEMO/op/nodes/$n.pem" "STRATA_TLS_KEY=$DEMO/op/nodes/$n.key")
  (cd "$dir" && env $(node_env "$n") "${tls[@]}" INIT_CWD="$dir" STRATA_CLUSTER_PEERS="${PEERS:-}" \
    deno task -q --config "$REPO/deno.json" ctl "$@")
}
ctl() {
  local n=$1
  shift
  ctl_in "$n" "$DEMO/$n" "$@"
}
declare -A NODE_PID
# Starts node $1 (with its fs also on tcp:// when $2 is "tcp", port $FS_B); see wait_ready.
start_node() {
  local n=$1
  rm -f "$DEMO/$n/rt/ready"
  if [ "${2:-}" = tcp ]; then
    env $(node_env "$n") STRATA_FS_LISTEN="tcp://127.0.0.1:$FS_B" \
      STRATA_TLS_CERT="$DEMO/op/nodes/$n.pem" STRATA_TLS_KEY="$DEMO/op/nodes/$n.key" \
      deno task -q --config "$REPO/deno.json" start --json >> "$DEMO/$n.log" 2>&1 &
  else
    env $(node_env "$n") deno task -q --config "$REPO/deno.json" start --json \
      >> "$DEMO/$n.log" 2>&1 &
  fi
  NODE_PID[$n]=$!
  STARTED+=($!)
}
# Waits until every service of each node `$@` is healthy (the supervisor writes rt/ready).
wait_ready() {
  local n
  for n in "$@"; do
    for _ in $(seq 300); do
      [ -s "$DEMO/$n/rt/ready" ] && continue 2
      kill -0 "${NODE_PID[$n]}" 2> /dev/null || fail "node $n exited: $(tail -n 5 "$DEMO/$n.log")"
      sleep 0.1
    done
    fail "node $n not healthy in 30 s: $(tail -n 5 "$DEMO/$n.log")"
  done
}

mkdir -p "$DEMO/op" "$DEMO/dl"
for n in "${NODES[@]}"; do mkdir -p "$DEMO/$n/export"; done

step "strata-ctl cluster init (root key and CA in $DEMO/op)"
ctl_in a "$DEMO/op" cluster init --dir "$DEMO/op" --name "$CLUSTER" > /dev/null ||
  fail "cluster init"

step "three nodes (a, b, c), each with its own runtime and state dirs"
for n in "${NODES[@]}"; do start_node "$n"; done
wait_ready "${NODES[@]}"
for n in "${NODES[@]}"; do
  step "strata-ctl cluster join $n --host 127.0.0.1"
  ctl_in "$n" "$DEMO/op" cluster join "$n" --dir "$DEMO/op" --host 127.0.0.1 > /dev/null ||
    fail "cluster join $n"
done
# Only B's fs is called from another node here: B alone is restarted with its tcp:// endpoint.
step "node b restarted with its fs also on tcp://127.0.0.1:$FS_B (the certificate join issued)"
stop_pids "${NODE_PID[b]}"
forget "${NODE_PID[b]}"
start_node b tcp
wait_ready b
SETUP_MS=$(($(ms_now) - T0))

step "issue on A: a token for fs (open, read, list), 10 minutes"
out=$(ctl a --json identity.issue '{"service":"fs","actions":["open","read","list"],"ttl_seconds":600}') ||
  fail "issue on A: $out"
TOKEN=$(echo "$out" | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
CAP=$(echo "$out" | sed -n 's/.*"cap_id": "\([^"]*\)".*/\1/p')
case "$TOKEN" in v4.public.*) ;; *) fail "no token in: $out" ;; esac
say "   cap_id $CAP, issuer identity@a"

for n in b c; do
  step "use on ${n^^}: fs.list of $n's export root with A's token"
  out=$(ctl "$n" -token "$TOKEN" fs.list "{\"path\":\"$DEMO/$n/export\"}") ||
    fail "A's token refused on $n: $out"
  say "   ok on $n"
done

step "read a $MIB MiB file of B's on A, over TLS (strata-ctl --node b fs get)"
head -c "$((MIB * 1024 * 1024))" /dev/urandom > "$DEMO/b/export/big.bin"
SUM_B=$(sha256sum "$DEMO/b/export/big.bin" | cut -d' ' -f1)
t=$(ms_now)
SUM_A=$(PEERS="127.0.0.1:$FS_B" ctl_in a "$DEMO/dl" --node b -token "$TOKEN" \
  fs get "$DEMO/b/export/big.bin" - | sha256sum | cut -d' ' -f1)
READ_MS=$(($(ms_now) - t))
say "   sha256 on B: $SUM_B"
say "   sha256 on A: $SUM_A"
[ "$SUM_A" = "$SUM_B" ] || fail "the file read on A differs from B's"
say "   byte-identical"

step "revoke on C: strata-ctl token revoke TOKEN, with C's operator token"
probe_out="$DEMO/probe.out"
deno run --quiet --no-prompt --allow-read="$DEMO" --allow-write="$DEMO" \
  --allow-net="unix:$DEMO/a/rt/fs.sock,unix:$DEMO/b/rt/fs.sock,unix:$DEMO/c/rt/fs.sock" \
  scripts/cluster_demo_probe.ts "$TOKEN" \
  "a=$DEMO/a/rt/fs.sock:$DEMO/a/export" "b=$DEMO/b/rt/fs.sock:$DEMO/b/export" \
  "c=$DEMO/c/rt/fs.sock:$DEMO/c/export" > "$probe_out" 2>&1 &
PROBE=$!
STARTED+=($PROBE)
for _ in $(seq 200); do
  grep -q '^ready' "$probe_out" && break
  kill -0 "$PROBE" 2> /dev/null || fail "probe: $(cat "$probe_out")"
  sleep 0.05
done
t=$(ms_now)
out=$(ctl c token revoke "$TOKEN") || fail "revoke on C: $out"
REVOKE_MS=$(($(ms_now) - t))
wait "$PROBE" || fail "probe: $(cat "$probe_out")"
at() { sed -n "s/^refused $1 //p" "$probe_out"; }

for n in a b; do
  step "refused on ${n^^}"
  if out=$(ctl "$n" -token "$TOKEN" fs.list "{\"path\":\"$DEMO/$n/export\"}" 2>&1); then
    fail "A's token still honoured on $n after the revoke on C: $out"
  fi
  echo "$out" | grep -q revoked || fail "the refusal on $n does not say revoked: $out"
  say "   refused on $n: $(echo "$out" | sed -n 's/.*"message": "\(.*revoked\)".*/\1/p' | head -n 1)"
done

say ""
say "figures (this machine, loopback):"
say "  setup (3 etcd members, 3 nodes, init, 3 joins, b restarted): $((SETUP_MS / 1000)).$(((SETUP_MS % 1000) / 100)) s"
awk -v ms="$READ_MS" -v mib="$MIB" 'BEGIN {
  printf "  %d MiB read on A from B over TLS: %.2f s, %.1f MB/s (strata-ctl --node b fs get, with its start)\n",
    mib, ms / 1000, mib * 1.048576 / (ms / 1000) }'
awk -v c="$(at c)" -v a="$(at a)" -v b="$(at b)" -v r="$REVOKE_MS" 'BEGIN {
  printf "  revoke on C: strata-ctl answered in %d ms (with its start)\n", r
  printf "  revocation propagation, after C'"'"'s fs refused: A %+.1f ms, B %+.1f ms\n", a - c, b - c }'
say ""
say "cluster_demo: byte-identical; refused on A and B"
