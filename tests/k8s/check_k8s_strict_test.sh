#!/usr/bin/env bash
# scripts/check-k8s is strict: each case below breaks one thing in a copy
# of k8s/ and expects check-k8s to fail, naming it. The unchanged copy must
# pass. (A misspelled field such as readinesProbe passed the schema
# validation alone: the schemas allow unknown fields, as a non-strict API
# server ignores them.)
#   tests/k8s/check_k8s_strict_test.sh     (run by .ci/run after check-k8s)
# The cases of the broker's config check run when build/service/token-broker
# is built and knows the shared_state section.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# run_case NAME EXPECTED_MESSAGE FILE SED_EXPRESSION
#   EXPECTED_MESSAGE empty: the copy must pass.
run_case() {
  local name=$1 expected=$2 file=$3 expr=$4 rc=0
  rm -rf "$work/k8s"
  cp -r "$repo/k8s" "$work/k8s"
  if [[ -n $file ]]; then
    cp "$work/k8s/$file" "$work/before"
    sed -i -e "$expr" "$work/k8s/$file"
    if cmp -s "$work/before" "$work/k8s/$file"; then
      echo "FAIL $name: the edit changed nothing in k8s/$file"
      failed=$((failed + 1))
      return
    fi
  fi
  # BUILD_DIR: no broker to check the configs with (not what is tested),
  # unless the case sets broker_dir.
  BUILD_DIR=${broker_dir:-/nonexistent} bash "$repo/scripts/check-k8s" "$work/k8s" >"$work/out" 2>&1 ||
    rc=$?
  if [[ -z $expected ]]; then
    if ((rc == 0)); then
      echo "ok   $name"
      passed=$((passed + 1))
    else
      echo "FAIL $name: check-k8s failed on the unchanged manifests:"
      cat "$work/out"
      failed=$((failed + 1))
    fi
  elif ((rc != 0)) && grep -qF -- "$expected" "$work/out"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: expected check-k8s to fail with: $expected (exit $rc)"
    cat "$work/out"
    failed=$((failed + 1))
  fi
}

run_case "unchanged manifests pass" "" "" ""
run_case "misspelled readinessProbe" 'unknown field "readinesProbe"' \
  base/deployment.yaml 's/^          readinessProbe:/          readinesProbe:/'
run_case "misspelled securityContext.runAsNonRoot" 'unknown field "runAsNonroot"' \
  base/deployment.yaml 's/^            runAsNonRoot: true/            runAsNonroot: true/'
run_case "misspelled field in an overlay's patch" 'unknown field "resoures"' \
  overlays/dev/deployment-patch.yaml 's/^          resources:/          resoures:/'
run_case "misspelled field in the emulator" 'unknown field "readOnlyRootFileSystem"' \
  overlays/dev/emulator.yaml 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/'
run_case "a string where a number goes" 'expected a number' \
  base/deployment.yaml 's/^            periodSeconds: 10$/            periodSeconds: "10"/'
run_case "capabilities not dropped" 'capabilities.drop does not include "ALL"' \
  base/deployment.yaml 's/drop: \["ALL"\]/drop: ["NET_RAW"]/'
run_case "no memory limit" 'no resources.limits.memory' \
  base/deployment.yaml '/^              memory: 256Mi$/d'
run_case "no seccomp profile" 'no seccompProfile' \
  base/deployment.yaml '/^        seccompProfile:$/,/^          type: RuntimeDefault$/d'
run_case "writable root filesystem" 'readOnlyRootFilesystem is not true' \
  base/deployment.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/'
run_case "no liveness probe on the emulator" 'no livenessProbe' \
  overlays/dev/emulator.yaml '/^          livenessProbe:$/,/^            failureThreshold: 3$/d'
run_case "dev image not the one CI builds" 'is not one CI builds' \
  overlays/dev/kustomization.yaml 's/newTag: dev$/newTag: latest/'
run_case "prod image not the broker image" 'is not the broker image CI builds' \
  overlays/prod/kustomization.yaml 's|newName: registry.example.com/platform/token-broker|newName: registry.example.com/platform/other|'


# Shared state on Redis (k8s/overlays/dev-redis, prod-redis and the
# shared-state-redis component).
run_case "misspelled field in the Redis StatefulSet" 'unknown field "readOnlyRootFileSystem"' \
  overlays/dev-redis/redis.yaml 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/'
run_case "Redis without a readiness probe" 'container redis: no readinessProbe' \
  overlays/dev-redis/redis.yaml '/^          readinessProbe:$/,/^            failureThreshold: 2$/d'
run_case "Redis image at a moving tag" 'image "redis:7" is not one CI builds' \
  overlays/dev-redis/redis.yaml 's/image: redis:7.0.15$/image: redis:7/'
run_case "Redis password written in the manifest" '--requirepass is not $(VAR) with VAR from a Secret' \
  overlays/dev-redis/redis.yaml 's/^            - \$(REDISCLI_AUTH)$/            - hunter2/'
run_case "Redis without AOF" 'no --appendonly yes' \
  overlays/dev-redis/redis.yaml '/^            - --appendonly$/{n;s/"yes"/"no"/}'
run_case "Redis may evict" 'no --maxmemory-policy noeviction' \
  overlays/dev-redis/redis.yaml 's/^            - noeviction$/            - allkeys-lru/'
run_case "Redis reachable from every pod in the namespace" 'lets in more than the broker' \
  overlays/dev-redis/redis.yaml '/^        - podSelector:$/,/^              app.kubernetes.io\/name: token-broker$/c\        - podSelector: {}'
run_case "the encryption key mounted into Redis" 'which holds the broker'"'"'s encryption keys' \
  overlays/dev-redis/redis.yaml 's/^                  name: token-broker-redis$/                  name: token-broker-shared-state-key/'
run_case "password_file outside the mounted Secret" 'password_file /var/run/secrets/token-broker/redis-auth/password is not in a Secret' \
  overlays/dev-redis/broker.yaml 's|/var/run/secrets/token-broker/redis/password|/var/run/secrets/token-broker/redis-auth/password|'
run_case "no egress to the Sentinels" 'reach Redis on TCP port 26379' \
  components/shared-state-redis/networkpolicy-redis.yaml 's/- port: 26379$/- port: 26380/'
run_case "dev-redis config drifted from dev's" 'differs from k8s/overlays/dev/broker.yaml' \
  overlays/dev/broker.yaml 's/^log_level: debug$/log_level: info/'

# With a built broker that knows shared_state: the configs the overlays
# deploy go through its --check_config.
broker=$repo/build/service/token-broker
if [[ -x $broker ]] &&
  "$broker" --config "$repo/k8s/overlays/dev-redis/broker.yaml" --check_config >/dev/null 2>&1; then
  broker_dir=$repo/build
  run_case "unchanged manifests pass the broker's config check" "" "" ""
  run_case "a grant store next to shared state (prod-redis)" 'must not be set with shared_state.redis' \
    overlays/prod-redis/broker.yaml \
    's|^# No grant_store: .*|grant_store: {directory: /var/lib/tokenbroker/grants, keys: [{id: k1, file: /var/run/secrets/token-broker/store/k1}]}|'
  run_case "a Redis address without its port (dev-redis)" 'overlays/dev-redis: its broker config' \
    overlays/dev-redis/broker.yaml 's/^    address: redis:6379$/    address: redis/'
  unset broker_dir
else
  echo "skip the broker's config check: $broker is not built or does not know shared_state yet"
fi

echo "check_k8s_strict_test: $passed passed, $failed failed"
((failed == 0))
