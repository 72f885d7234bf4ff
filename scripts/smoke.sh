#!/usr/bin/env bash
# Smoke test against a running supervisor, through strata-ctl:
# status, svc.list, issue, list (absolute and relative), open and read,
# revoke, then list refused with "revoked".
#
#   deno task start            # in one terminal
#   bash scripts/smoke.sh      # in another
#
# STRATA_CTL picks the CLI (default: deno task ctl; e.g. STRATA_CTL=./bin/strata-ctl).
# SMOKE_DIR is where the test files go; it must lie under an fs export root
# (default: a new folder under /tmp, which `deno task start` exports).
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a CTL <<< "${STRATA_CTL:-deno task -q ctl}"
ctl() { "${CTL[@]}" "$@"; }
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -n 1; }
step() { printf '== %s\n' "$*"; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }

own_dir=""
if [ -z "${SMOKE_DIR:-}" ]; then
  own_dir=$(mktemp -d /tmp/strata-smoke-XXXXXX)
  SMOKE_DIR=$own_dir
fi
trap '[ -n "$own_dir" ] && rm -rf "$own_dir"' EXIT
mkdir -p "$SMOKE_DIR/sub"
printf 'hello strata\n' > "$SMOKE_DIR/test.txt"

step "supervisor.status"
out=$(ctl supervisor.status) || fail "supervisor.status: $out"
echo "$out" | grep -q '"node_id"' || fail "status has no node_id: $out"

step "supervisor.svc.list"
out=$(ctl supervisor.svc.list) || fail "svc.list: $out"
for svc in registry identity fs; do
  echo "$out" | grep -q "\"name\": \"$svc\"" || fail "svc.list lacks $svc: $out"
done
if echo "$out" | grep '"state"' | grep -vq '"Healthy"'; then fail "not every service is Healthy: $out"; fi

step "identity.issue (path_prefix $SMOKE_DIR)"
out=$(ctl identity.issue "{\"service\":\"fs\",\"actions\":[\"open\",\"read\",\"list\"],\"path_prefix\":\"$SMOKE_DIR\"}") \
  || fail "issue: $out"
TOKEN=$(echo "$out" | field token)
CAP=$(echo "$out" | field cap_id)
case "$TOKEN" in v4.public.*) ;; *) fail "no v4.public token in: $out" ;; esac

step "fs.list absolute"
out=$(ctl -token "$TOKEN" fs.list "{\"path\":\"$SMOKE_DIR\"}") || fail "list: $out"
echo "$out" | grep -q '"name": "test.txt"' || fail "list lacks test.txt: $out"

step "fs.list relative"
out=$(ctl -token "$TOKEN" fs.list '{"path":"sub"}') || fail "relative list: $out"
echo "$out" | grep -q '"entries"' || fail "relative list has no entries: $out"

step "fs.open and fs.read"
out=$(ctl -token "$TOKEN" fs.open '{"path":"test.txt"}') || fail "open: $out"
HANDLE=$(echo "$out" | field handle)
out=$(ctl -token "$TOKEN" fs.read "{\"handle\":\"$HANDLE\",\"offset\":0,\"size\":4096}") || fail "read: $out"
echo "$out" | grep -q '"data": "hello strata\\n"' || fail "read returned something else: $out"
echo "$out" | grep -q '"bytes_read": 13' || fail "read did not return 13 bytes: $out"

step "identity.revoke"
out=$(ctl identity.revoke "{\"cap_id\":\"$CAP\"}") || fail "revoke: $out"

step "fs.list after revoke is refused"
if out=$(ctl -token "$TOKEN" fs.list "{\"path\":\"$SMOKE_DIR\"}"); then fail "list still works after revoke: $out"; fi
echo "$out" | grep -q 'revoked' || fail "refusal does not say revoked: $out"
if out=$(ctl -token "$TOKEN" fs.read "{\"handle\":\"$HANDLE\"}"); then fail "handle still reads after revoke: $out"; fi

echo "smoke: all steps passed"
