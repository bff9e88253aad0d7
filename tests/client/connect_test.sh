#!/usr/bin/env bash
# `tokenbrokerctl connect` against the real broker and emulator, run by
# `with_broker.sh --user-app` (TOKENBROKER_ADDR, TOKENBROKER_USER_APP): the
# link alone on its own line of stdout, exit 7 when nobody signs in before
# --wait ends, and --no-wait; and the app without users in `apps`. Nobody
# signs in here (the browser tests do).
#
# Usage: connect_test.sh TOKENBROKERCTL
# Exits 77 (skipped) while the broker cannot mint links yet.
set -uo pipefail
ctl=$1
app=${TOKENBROKER_USER_APP:?run by with_broker.sh --user-app}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "connect_test: FAIL: $*" >&2
  failures=$((failures + 1))
}

# Runs tokenbrokerctl ARGS; sets rc, and leaves stdout and stderr in files.
run() {
  rc=0
  "$ctl" "$@" >"$work/out" 2>"$work/err" || rc=$?
}

# The lines of stdout that are links.
links() { grep -E '^https?://' "$work/out" || true; }

# The user app and its (no) users in `apps`.
run apps
((rc == 0)) || fail "apps: exit $rc"
grep -qE "^$app +authorization_code .* no user connected" "$work/out" ||
  fail "apps: no row for $app: $(cat "$work/out")"
grep -qE "^$app +- +- +- +- +none +no user connected; run 'tokenbrokerctl connect $app'" "$work/out" ||
  fail "apps: no users row for $app: $(cat "$work/out")"

run connect "$app" --wait 1s
if grep -q -e 'UNIMPLEMENTED' -e 'not served by this broker' "$work/err"; then
  echo "connect_test: SKIP: the broker cannot mint sign-in links yet" \
    "(BrokerAdmin.CreateConnectLink, service/app + service/http, issue 12):" \
    "$(cat "$work/err")"
  if ((failures > 0)); then exit 1; fi
  exit 77
fi
((rc == 7)) || fail "connect --wait 1s: exit $rc, want 7 (stderr: $(cat "$work/err"))"
first=$(links)
[[ $(links | wc -l) -eq 1 ]] || fail "connect --wait 1s: want one link line, stdout: $(cat "$work/out")"
[[ $first =~ ^http://127\.0\.0\.1:[0-9]+/oauth/start\?.+ ]] ||
  fail "connect: not a link to the broker's start page: $first"
grep -q "valid until " "$work/out" || fail "connect: no expiry on stdout"
grep -q "no user connected $app within 1s" "$work/err" ||
  fail "connect: timeout message: $(cat "$work/err")"
grep -q "tokenbrokerctl connect $app" "$work/err" ||
  fail "connect: the timeout message does not say how to get a new link"
if [[ -n $first ]] && grep -qF "$first" "$work/err"; then
  fail "connect: the link appeared on stderr"
fi

run connect "$app" --no-wait
((rc == 0)) || fail "connect --no-wait: exit $rc (stderr: $(cat "$work/err"))"
second=$(links)
[[ $(links | wc -l) -eq 1 ]] || fail "connect --no-wait: want one link line, stdout: $(cat "$work/out")"
[[ $second != "$first" ]] || fail "connect: the same link twice"

# A script takes the link alone.
url=$("$ctl" connect "$app" --no-wait | grep -E '^https?://')
[[ $url == http://127.0.0.1:* ]] || fail "connect --no-wait | grep: got '$url'"

if ((failures > 0)); then exit 1; fi
echo "connect_test: ok"
