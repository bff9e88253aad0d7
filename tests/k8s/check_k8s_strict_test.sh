#!/usr/bin/env bash
# scripts/check-k8s is strict: each case below breaks one thing in a copy
# of k8s/ and expects check-k8s to fail, naming it. The unchanged copy must
# pass. (A misspelled field such as readinesProbe passed the schema
# validation alone: the schemas allow unknown fields, as a non-strict API
# server ignores them.)
#   tests/k8s/check_k8s_strict_test.sh     (run by .ci/run after check-k8s)
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
  # BUILD_DIR: no broker to check the configs with (not what is tested).
  BUILD_DIR=/nonexistent bash "$repo/scripts/check-k8s" "$work/k8s" >"$work/out" 2>&1 || rc=$?
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

echo "check_k8s_strict_test: $passed passed, $failed failed"
((failed == 0))
