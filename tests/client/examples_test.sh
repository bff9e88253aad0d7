#!/usr/bin/env bash
# Runs an example (the C++ binary or the Python script) against the broker
# and emulator started by with_broker.sh and checks that it lists the demo
# organization's environments through the broker's Call (the examples have
# no Anypoint URL and never see a token).
# Usage: examples_test.sh COMMAND [ARGS...]
set -euo pipefail
out=$("$@" --broker "$TOKENBROKER_ADDR" --app design-center --org "$ANYPOINT_ORG")
echo "$out"
grep -q $'^Production\tproduction\t7f3a9b2e-1d4c-4e8f-a6b5-0c9d8e7f6a51$' <<<"$out"
grep -q $'^Sandbox\tsandbox\t2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22$' <<<"$out"

# exchange-reader may not list environments (neither its scopes nor the
# caller's grant cover it): the broker refuses, the example fails.
if err=$("$@" --broker "$TOKENBROKER_ADDR" --app exchange-reader \
    --org "$ANYPOINT_ORG" 2>&1 >/dev/null); then
  echo "examples_test: a request the broker must refuse succeeded" >&2
  exit 1
fi
echo "$err"
grep -q PERMISSION_DENIED <<<"$err"

# --user reaches the broker: design-center acts on its own behalf, so naming
# a user is refused.
if err=$("$@" --broker "$TOKENBROKER_ADDR" --app design-center \
    --org "$ANYPOINT_ORG" --user alice.acme 2>&1 >/dev/null); then
  echo "examples_test: a user on an app acting on its own behalf was accepted" >&2
  exit 1
fi
echo "$err"
grep -q "acts on its own behalf" <<<"$err"
