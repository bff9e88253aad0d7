#!/usr/bin/env bash
# The sign-in a person does in a browser, scripted with curl: scripts/demo
# uses it when no headless Chromium can run. Each request is one the browser
# makes when a user opens the broker's one-time link:
#   1. GET the link: the broker sets a cookie binding the sign-in to this
#      browser and redirects to Anypoint's authorize URL (response_type=code,
#      the app's scopes plus offline_access, state, PKCE S256 challenge);
#   2. GET the authorize URL: Anypoint's sign-in page;
#   3. the user types username and password, "Sign in" (POST of the form);
#   4. Anypoint's consent page names the connected app and its scopes; the
#      user clicks "Approve" (POST decision=approve);
#   5. Anypoint redirects to the broker's /oauth/callback with a code; the
#      broker checks the state against the cookie, exchanges the code, stores
#      the grant and shows a page naming the app, the user and the scopes.
# One cookie jar serves the broker and Anypoint, as in a browser.
#
# Usage: DEMO_PASSWORD=... scripts/demo-sign-in.sh LINK USERNAME
# The password comes from the environment (never the command line) and is
# never printed; nor are the cookie, the state or the code. Every URL must be
# on loopback (127.0.0.1, localhost, [::1]): nothing else is contacted.
# Prints what each page says; exits 0 when the broker's page says
# "Connected", 1 otherwise.
set -euo pipefail
if (($# != 2)); then
  echo "usage: DEMO_PASSWORD=... $0 LINK USERNAME" >&2
  exit 2
fi
link=$1 username=$2
password=${DEMO_PASSWORD:?DEMO_PASSWORD: the password of $username}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jar=$work/cookies page=$work/page

fail() {
  echo "demo-sign-in: $*" >&2
  exit 1
}

# Refuses URL $1 unless it is on loopback; sets $origin to its scheme, host
# and port.
on_loopback() {
  [[ $1 =~ ^(http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?)/ ]] ||
    fail "not a loopback URL, not opened: ${1%%\?*}"
  origin=${BASH_REMATCH[1]}
}

# One request as the browser makes it: URL [CURL ARGS...]. Sets $status and
# $location (where a redirect points); the body goes to $page.
request() {
  local url=$1 answer
  shift
  on_loopback "$url"
  : >"$page"
  answer=$(curl -sS --proto =http -c "$jar" -b "$jar" -o "$page" \
    -w '%{http_code} %{redirect_url}' "$@" "$url") || true
  status=${answer%% *} location=${answer#* }
}

# What $page says: its heading, paragraphs and lists, joined by " | ".
page_text() {
  python3 - "$page" <<'PY'
import html.parser, sys

class Blocks(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.blocks, self.items, self.open = [], None, None
    def handle_starttag(self, tag, attrs):
        if tag == "ul":
            self.items = []
        elif tag in ("h1", "p", "li"):
            self.open = [tag, ""]
    def handle_data(self, data):
        if self.open:
            self.open[1] += data
    def handle_endtag(self, tag):
        if tag == "ul" and self.items is not None:
            self.blocks.append(", ".join(self.items))
            self.items = None
        elif self.open and tag == self.open[0]:
            text = " ".join(self.open[1].split())
            (self.items if tag == "li" and self.items is not None
             else self.blocks).append(text)
            self.open = None

parser = Blocks()
parser.feed(open(sys.argv[1], encoding="utf-8").read())
print(" | ".join(parser.blocks))
PY
}

# An attribute of the page's form: `action`, or `name="txn" value` (the
# sign-in's server-side transaction at Anypoint).
form_field() { sed -n "s/.*$1=\"\\([^\"]*\\)\".*/\\1/p" "$page" | head -n 1; }

# Where the page's form posts to.
form_action() {
  local action
  action=$(form_field action)
  if [[ $action == /* ]]; then action=$anypoint$action; fi
  printf '%s' "$action"
}

# 1. The link: the broker's redirect to Anypoint.
request "$link"
[[ $status == 302 && -n $location ]] ||
  fail "the link answered $status, not a redirect to Anypoint: $(page_text)"

# 2. Anypoint's sign-in page.
request "$location"
anypoint=$origin
[[ $status == 200 ]] || fail "the authorize URL answered $status: $(page_text)"
echo "opened the link; the broker redirected to Anypoint's sign-in page:"
echo "  $(page_text)"

# 3. Sign in (the password goes to curl on stdin, urlencoded).
action=$(form_action) txn=$(form_field 'name="txn" value')
request "$action" --data-urlencode "txn=$txn" \
  --data-urlencode "username=$username" --data-urlencode "password@-" \
  < <(printf '%s' "$password")
grep -q 'name="decision" value="approve"' "$page" ||
  fail "signing in as $username failed ($status): $(page_text)"
echo "signed in as $username; Anypoint's consent page:"
echo "  $(page_text)"

# 4. Approve: Anypoint sends the browser back to the broker with a code.
action=$(form_action) txn=$(form_field 'name="txn" value')
request "$action" --data-urlencode "txn=$txn" \
  --data-urlencode "decision=approve"
[[ $status == 302 && -n $location ]] ||
  fail "approving answered $status, not a redirect: $(page_text)"

# 5. The broker's callback page.
request "$location"
echo "clicked Approve; Anypoint sent the browser back to the broker's callback, whose page says:"
echo "  $(page_text)"
if [[ $status != 200 ]] || ! grep -q '<h1>Connected' "$page"; then
  fail "the broker's callback answered $status"
fi
