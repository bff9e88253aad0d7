#!/usr/bin/env bash
# Runs one suite of the real-browser end-to-end tests in headless Chromium.
#
# Usage: run.sh NPM_DIR SUITE.js [SUITE ARGS...]
#   NPM_DIR  where playwright-core (the version package-lock.json pins) is
#            installed from the npm registry, once: a directory of the build
#            tree, never the repository
#   TOKENBROKER_CHROMIUM  the Chromium binary (default: Debian's
#            /usr/lib/chromium/chromium, installed by scripts/install-deps)
#   BROWSER_E2E_SUMMARY   if set, a file the outcome line is appended to
#            (ctest prints these files after its run)
#
# Exit 77 (ctest SKIP) only when Chromium is not installed or cannot start,
# after printing "browser-e2e: SKIPPED: <reason>". Anything else that goes
# wrong (no node or npm, the npm install, a scenario) fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=$1 suite=$2
shift 2
name=$(basename "$suite" .js)

if [[ -n ${BROWSER_E2E_SUMMARY:-} ]]; then
  mkdir -p "$(dirname "$BROWSER_E2E_SUMMARY")"
  rm -f "$BROWSER_E2E_SUMMARY"
fi
summarize() {
  echo "browser-e2e: $*"
  if [[ -n ${BROWSER_E2E_SUMMARY:-} ]]; then
    # Made again if another ctest run in this build tree removed it.
    mkdir -p "$(dirname "$BROWSER_E2E_SUMMARY")"
    echo "browser-e2e: $*" >>"$BROWSER_E2E_SUMMARY" || true
  fi
}

chromium=${TOKENBROKER_CHROMIUM:-/usr/lib/chromium/chromium}
if [[ ! -x $chromium ]]; then
  summarize "SKIPPED: $name: no Chromium at $chromium (scripts/install-deps" \
    "installs Debian's chromium; TOKENBROKER_CHROMIUM names another binary)"
  exit 77
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    summarize "FAILED: $name: $tool is not installed (scripts/install-deps installs it)"
    exit 1
  fi
done

# package-lock.json pins playwright-core with its integrity hash; npm ci
# installs exactly that, runs no install script and downloads no browser.
# Concurrent suites share NPM_DIR: one installs, the others wait.
mkdir -p "$npm_dir"
exec 9>"$npm_dir/.install.lock"
flock 9
if [[ ! -f $npm_dir/node_modules/playwright-core/package.json ]] ||
   ! cmp -s "$here/package-lock.json" "$npm_dir/package-lock.json"; then
  echo "browser-e2e: installing playwright-core from the npm registry into $npm_dir"
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$npm_dir" \
      --ignore-scripts --no-audit --no-fund --loglevel=error >"$npm_dir/npm.log" 2>&1; then
    cat "$npm_dir/npm.log" >&2
    summarize "FAILED: $name: npm ci of playwright-core failed (its log is above)"
    rm -f "$npm_dir/package-lock.json"
    exit 1
  fi
fi
flock -u 9
exec 9>&-

export TOKENBROKER_CHROMIUM=$chromium
export NODE_PATH=$npm_dir/node_modules
exec node "$here/$suite" "$@"
