#!/usr/bin/env bash
# Starts the Anypoint emulator and the token broker binaries on 127.0.0.1
# port 0, runs a command against them, stops both and checks that no client
# secret reached the broker's log.
#
# Usage: with_broker.sh [--user-app] EMULATOR_BIN BROKER_BIN SOURCE_DIR
#                       COMMAND [ARGS...]
# --user-app adds to the demo config an app acting on behalf of users,
# "ctl-viewer" (the emulator's Environment Viewer: view:environment, members
# of the demo organization only), a grant for it to the anonymous caller
# (every user), and a grant store in the temporary directory (unless the
# config has one). Nobody has connected it.
# The command sees:
#   TOKENBROKER_ADDR       the broker's gRPC address (plaintext)
#   TOKENBROKER_PLAINTEXT  1
#   ANYPOINT_URL           the emulator's base URL
#   ANYPOINT_ORG           the demo organization id
#   TOKENBROKER_USER_APP   ctl-viewer (with --user-app)
# and the command's exit status is the script's.
set -euo pipefail
user_app=""
if [[ ${1:-} == --user-app ]]; then
  user_app=ctl-viewer
  shift
fi
emulator_bin=$1 broker_bin=$2 source_dir=$3
shift 3
org=c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f

work=$(mktemp -d)
emulator_pid="" broker_pid=""
cleanup() {
  for pid in $broker_pid $emulator_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Polls for a process's port file (not for time to pass): 20 s at most.
wait_for_port_file() {
  local file=$1 pid=$2 log=$3
  for _ in $(seq 1 200); do
    if [[ -s $file ]]; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "with_broker: $(basename "$log" .log) did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

"$emulator_bin" --fixture "$source_dir/emulator/fixtures/demo.yaml" \
  --listen 127.0.0.1:0 --port_file "$work/emulator.port" \
  >/dev/null 2>"$work/emulator.log" &
emulator_pid=$!
wait_for_port_file "$work/emulator.port" "$emulator_pid" "$work/emulator.log"
anypoint="http://127.0.0.1:$(cat "$work/emulator.port")"

# The demo config's grant store (its user app env-viewer) in $work.
sed -e "s|http://127.0.0.1:8081|$anypoint|" -e "s|/tmp/tokenbroker-demo|$work|g" \
  "$source_dir/config/demo.yaml" >"$work/broker.yaml"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/grant-store.key"
if [[ -n $user_app ]]; then
  # The app first in `apps:`, its grant first in the first caller's `grants:`.
  awk -v app="$user_app" -v url="$anypoint" -v org="$org" '
    { print }
    /^apps:$/ && !app_done {
      print "  - name: " app
      print "    base_url: " url
      print "    grant_type: authorization_code"
      print "    client_id: env-viewer-app"
      print "    client_secret: {env: ENV_VIEWER_CLIENT_SECRET}"
      print "    scopes: [view:environment]"
      print "    org_id: " org
      app_done = 1
    }
    /^    grants:$/ && !grant_done {
      print "      - app: " app
      print "        scopes: [\"*\"]"
      print "        users: [\"*\"]"
      print "        routes: [\"GET /accounts/api/organizations/*/environments\"]"
      grant_done = 1
    }' "$work/broker.yaml" >"$work/broker.yaml.new"
  mv "$work/broker.yaml.new" "$work/broker.yaml"
  if ! grep -q '^grant_store:' "$work/broker.yaml"; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/grant.key"
    printf 'grant_store:\n  directory: %s\n  keys: [{id: k1, file: %s}]\n' \
      "$work/grants" "$work/grant.key" >>"$work/broker.yaml"
  fi
fi
# Fake secrets the emulator's demo fixture knows.
export DESIGN_CENTER_CLIENT_SECRET=dc-secret-please-rotate
export EXCHANGE_READER_CLIENT_SECRET=exchange-reader-fake-secret
export ENV_VIEWER_CLIENT_SECRET=env-viewer-fake-secret
"$broker_bin" --config "$work/broker.yaml" --listen 127.0.0.1:0 \
  --port_file "$work/broker.port" 2>"$work/broker.log" &
broker_pid=$!
wait_for_port_file "$work/broker.port" "$broker_pid" "$work/broker.log"
unset DESIGN_CENTER_CLIENT_SECRET EXCHANGE_READER_CLIENT_SECRET \
  ENV_VIEWER_CLIENT_SECRET

export TOKENBROKER_ADDR=127.0.0.1:$(cat "$work/broker.port")
export TOKENBROKER_PLAINTEXT=1
export ANYPOINT_URL=$anypoint
export ANYPOINT_ORG=$org
if [[ -n $user_app ]]; then export TOKENBROKER_USER_APP=$user_app; fi

status=0
"$@" || status=$?
if grep -q -e dc-secret-please-rotate -e exchange-reader-fake-secret \
  -e env-viewer-fake-secret "$work/broker.log"; then
  echo "with_broker: a client secret appeared in the broker's log" >&2
  status=1
fi
# 77: the command skipped itself (ctest's SKIP_RETURN_CODE) and said why.
if ((status != 0 && status != 77)); then
  echo "with_broker: command failed ($status); broker log:" >&2
  cat "$work/broker.log" >&2
fi
exit "$status"
