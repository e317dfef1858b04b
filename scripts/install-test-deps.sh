#!/bin/sh
# Installs the real clients the end-to-end tests drive, on Debian.
# Idempotent: does nothing when they are already there.
set -e
# The ACME tests (e2e/acme_test.go) run Let's Encrypt's test CA, Pebble, and
# its DNS test server, built from the Go module proxy into bin/test-tools
# (the tests look there). The version is pinned; a binary already there is
# kept.
PEBBLE_VERSION=v2.10.3
tools="$(cd "$(dirname "$0")/.." && pwd)/bin/test-tools"
for cmd in pebble pebble-challtestsrv; do
	if [ ! -x "$tools/$cmd" ] || [ "$(cat "$tools/$cmd.version" 2>/dev/null)" != "$PEBBLE_VERSION" ]; then
		echo "installing $cmd $PEBBLE_VERSION into $tools"
		GOBIN="$tools" "${GO:-go}" install "github.com/letsencrypt/pebble/v2/cmd/$cmd@$PEBBLE_VERSION"
		echo "$PEBBLE_VERSION" >"$tools/$cmd.version"
	fi
done
# The send API's OpenAPI description (sendapi/openapi.json) is linted by
# Redocly's CLI (e2e/sendapi_test.go), installed from npm into
# bin/test-tools/redocly at a pinned version (once npm is there).
REDOCLY_VERSION=2.77.0
install_redocly() {
	if [ ! -x "$tools/redocly/node_modules/.bin/redocly" ] || [ "$(cat "$tools/redocly.version" 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
		echo "installing @redocly/cli $REDOCLY_VERSION into $tools/redocly"
		npm install --silent --no-audit --no-fund --prefix "$tools/redocly" "@redocly/cli@$REDOCLY_VERSION" >/dev/null
		echo "$REDOCLY_VERSION" >"$tools/redocly.version"
	fi
}
missing=""
command -v swaks >/dev/null 2>&1 || missing="$missing swaks"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
# swaks speaks TLS through Net::SSLeay, only a recommendation of its package.
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || missing="$missing libnet-ssleay-perl"
# DKIM signatures are also verified by an independent implementation,
# Debian's dkimpy (dkim/dkim_test.go), under Debian's own python3; -I keeps
# the repository's dkim/ directory from shadowing the module.
/usr/bin/python3 -I -c 'import dkim' >/dev/null 2>&1 || missing="$missing python3-dkim"
# ... which looks the keys up on a test DNS server through dnspython.
/usr/bin/python3 -I -c 'import dns.resolver' >/dev/null 2>&1 || missing="$missing python3-dnspython"
# The browser tests (e2e/browser_test.go) and `make screenshots` drive
# Debian's chromium headless through chromedp; nothing downloads a browser.
[ -x /usr/bin/chromium ] || missing="$missing chromium"
# The send API's documented examples (docs/send-api.md) run under curl,
# Node, Python's requests and PHP (e2e/sendapi_test.go).
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v php >/dev/null 2>&1 || missing="$missing php-cli"
python3 -c 'import requests' >/dev/null 2>&1 || missing="$missing python3-requests"
# The PostgreSQL store's tests (internal/pgtest) start throwaway clusters
# from Debian's binaries; the package's own default cluster on 5432 is
# harmless (the tests use free ports).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v npm >/dev/null 2>&1 && install_redocly
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
install_redocly
