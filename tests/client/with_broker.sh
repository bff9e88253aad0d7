#!/usr/bin/env bash
# Starts the Anypoint emulator and the token broker binaries on 127.0.0.1
# port 0, runs a command against them, stops both and checks that no client
# secret reached the broker's log.
#
# Usage: with_broker.sh EMULATOR_BIN BROKER_BIN SOURCE_DIR COMMAND [ARGS...]
# The command sees:
#   TOKENBROKER_ADDR       the broker's gRPC address (plaintext)
#   TOKENBROKER_PLAINTEXT  1
#   ANYPOINT_URL           the emulator's base URL
#   ANYPOINT_ORG           the demo organization id
# and the command's exit status is the script's.
set -euo pipefail
emulator_bin=$1 broker_bin=$2 source_dir=$3
shift 3

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

sed "s|http://127.0.0.1:8081|$anypoint|" "$source_dir/config/demo.yaml" \
  >"$work/broker.yaml"
# Fake secrets the emulator's demo fixture knows.
export DESIGN_CENTER_CLIENT_SECRET=dc-secret-please-rotate
export EXCHANGE_READER_CLIENT_SECRET=exchange-reader-fake-secret
"$broker_bin" --config "$work/broker.yaml" --listen 127.0.0.1:0 \
  --port_file "$work/broker.port" 2>"$work/broker.log" &
broker_pid=$!
wait_for_port_file "$work/broker.port" "$broker_pid" "$work/broker.log"
unset DESIGN_CENTER_CLIENT_SECRET EXCHANGE_READER_CLIENT_SECRET

export TOKENBROKER_ADDR=127.0.0.1:$(cat "$work/broker.port")
export TOKENBROKER_PLAINTEXT=1
export ANYPOINT_URL=$anypoint
export ANYPOINT_ORG=c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f

status=0
"$@" || status=$?
if grep -q -e dc-secret-please-rotate -e exchange-reader-fake-secret "$work/broker.log"; then
  echo "with_broker: a client secret appeared in the broker's log" >&2
  status=1
fi
if ((status != 0)); then
  echo "with_broker: command failed ($status); broker log:" >&2
  cat "$work/broker.log" >&2
fi
exit "$status"
