#!/usr/bin/env bash
# The interop suite (`make interop`): real, unmodified clients send through
# the built relay, on both listeners, and what reaches the upstream is
# compared with what they were told to send.
#
#   interop/run.sh [CLIENT...]      default: every client
#
# It makes a throwaway CA and a certificate for "localhost", starts a
# recording upstream (interop/upstream) and bin/outbound on free loopback
# ports, adds users with the CLI, then runs every client × listener × case:
#
#   multipart       multipart/alternative text + HTML            → delivered intact
#   attachment      text + binary attachment, UTF-8 subject and
#                   UTF-8 display name                           → delivered intact
#   wrong-password  AUTH with a wrong password                   → 535, explanation shown
#   foreign-from    From an address the user may not send as     → 550, explanation shown
#   over-limit      a user whose hourly limit is used up         → 450, explanation shown
#   untrusted-cert  the client trusts another CA                 → TLS refused, nothing sent
#
# Every client verifies the relay's certificate (CA and host name) against
# the test CA. One line per client × listener × case, PASS or FAIL with the
# reason, one for the docs (docs/clients.md must show these clients
# verbatim), then "N passed, M failed"; exits 1 on any failure. Logs stay in
# the work directory it names when something failed (INTEROP_KEEP=1: always).
#
# Clients are installed by scripts/install-interop-deps.sh. Each reads its
# settings from the environment: SMTP_HOST, SMTP_PORT, SMTP_SECURITY
# (implicit|starttls), SMTP_USER, SMTP_PASS, SMTP_CA_FILE, and the message
# from MAIL_FROM, MAIL_FROM_NAME, MAIL_TO, MAIL_SUBJECT, MAIL_TEXT,
# MAIL_HTML (empty: text only), MAIL_ATTACHMENT (a file; empty: none),
# MAIL_ATTACHMENT_NAME, MAIL_ATTACHMENT_TYPE.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTBOUND=${OUTBOUND:-$ROOT/bin/outbound}
# Debian's python3, which has Django; a python3 earlier on PATH may not.
PY=/usr/bin/python3
JAKARTA_CP=/usr/share/java/jakarta-mail.jar:/usr/share/java/jakarta-activation.jar
export LC_ALL=C.UTF-8 LANG=C.UTF-8 # Java decodes the environment by the locale

ALL_CLIENTS="nodemailer smtplib django phpmailer ruby-mail jakarta-mail swaks msmtp"
CLIENTS=${*:-$ALL_CLIENTS}
LISTENERS="implicit starttls"
CASES="multipart attachment wrong-password foreign-from over-limit untrusted-cert"

started=$(date +%s)
passed=0
failed=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/outbound-interop.XXXXXX")
PIDS=()

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	if [ "$failed" = 0 ] && [ -z "${INTEROP_KEEP:-}" ]; then
		rm -rf "$WORK"
	else
		echo "interop: logs in $WORK (relay.log, upstream.log, clients/, received/)" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	fail "setup" "$*"
	echo "$passed passed, $failed failed"
	exit 1
}

pass() {
	echo "PASS $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1: $2"
	failed=$((failed + 1))
}

# oneline FILE: the end of a log as one short line, for a FAIL reason.
oneline() {
	tail -n 6 "$1" | tr '\r\n\t' '   ' | sed 's/  */ /g; s/^ //' | cut -c1-400
}

# free_ports N: N loopback ports nobody listens on (yet).
free_ports() {
	$PY - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
	local what=$1 deadline=$(($(date +%s) + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$what did not come up within the time limit"
		sleep 0.1
	done
}

# --- preconditions -----------------------------------------------------------
[ -x "$OUTBOUND" ] || die "$OUTBOUND is missing: run \`make build\` first"
for tool in openssl $PY go; do
	command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-interop-deps.sh"
done

# --- test CA, relay certificate, a second CA nobody should trust -------------
mkdir -p "$WORK/tls" "$WORK/clients" "$WORK/received"
make_ca() { # make_ca NAME CN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$WORK/tls/$1.key" -out "$WORK/tls/$1.pem" -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>>"$WORK/tls/openssl.log"
}
make_ca ca "outbound interop test CA" || die "openssl could not make the test CA"
make_ca other-ca "some other CA" || die "openssl could not make the second CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$WORK/tls/relay.key" -out "$WORK/tls/relay.csr" -subj "/CN=localhost" 2>>"$WORK/tls/openssl.log" &&
	printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$WORK/tls/relay.ext" &&
	openssl x509 -req -in "$WORK/tls/relay.csr" -CA "$WORK/tls/ca.pem" -CAkey "$WORK/tls/ca.key" \
		-CAcreateserial -days 2 -extfile "$WORK/tls/relay.ext" -out "$WORK/tls/relay.pem" 2>>"$WORK/tls/openssl.log" ||
	die "openssl could not issue the relay's certificate (see $WORK/tls/openssl.log)"
CA=$WORK/tls/ca.pem
OTHER_CA=$WORK/tls/other-ca.pem

# --- recording upstream -------------------------------------------------------
go build -o "$WORK/upstream" ./interop/upstream 2>"$WORK/upstream-build.log" ||
	die "building interop/upstream failed: $(oneline "$WORK/upstream-build.log")"
"$WORK/upstream" -listen 127.0.0.1:0 -dir "$WORK/received" -addr-file "$WORK/upstream.addr" \
	>"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_for "the upstream" 10 test -s "$WORK/upstream.addr"
UPSTREAM_PORT=$(sed 's/.*://' "$WORK/upstream.addr")

# --- the relay ----------------------------------------------------------------
read -r IMPLICIT_PORT STARTTLS_PORT ADMIN_PORT <<<"$(free_ports 3)"
CONFIG=$WORK/outbound.toml
cat >"$CONFIG" <<EOF
hostname = "localhost"
data_dir = "$WORK/data"

[tls]
cert = "$WORK/tls/relay.pem"
key = "$WORK/tls/relay.key"

[submission]
implicit_tls = "127.0.0.1:$IMPLICIT_PORT"
starttls = "127.0.0.1:$STARTTLS_PORT"
# Every client tries a wrong password on purpose, all from 127.0.0.1:
# keep throttling on, above what the suite does.
auth_max_failures = 1000

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[default_route]
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"
spf_policy = "off"   # no DNS here

[retry]
schedule = ["1s"]

[limits]
default_route_per_hour = 1000
default_route_per_day = 1000

[log]
level = "info"
EOF
"$OUTBOUND" serve -config "$CONFIG" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for i in $(seq 1 200); do # up to 20 s
	kill -0 "$RELAY_PID" 2>/dev/null || die "the relay exited: $(oneline "$WORK/relay.log")"
	"$OUTBOUND" -config "$CONFIG" usage >/dev/null 2>&1 && break
	[ "$i" = 200 ] && die "the relay's admin API did not answer within 20s: $(oneline "$WORK/relay.log")"
	sleep 0.1
done

cli() {
	"$OUTBOUND" -config "$CONFIG" "$@" >>"$WORK/cli.log" 2>&1 || die "outbound $*: $(oneline "$WORK/cli.log")"
}
SENDER=sender@interop.test
SENDER_PASS="Sender-pass_2024!%&"
LIMITED=limited@interop.test
LIMITED_PASS=limited-password-2
printf '%s\n' "$SENDER_PASS" | cli user add "$SENDER" --allow-from "$SENDER"
printf '%s\n' "$LIMITED_PASS" | cli user add "$LIMITED" --allow-from "$LIMITED"
cli limits set "$LIMITED" --per-hour 1 --per-day 100

# --- the messages ---------------------------------------------------------------
# Lines that trip up SMTP and MIME code: a leading dot (dot-stuffing), a lone
# dot, "From " at the start of a line (mbox escaping), non-ASCII, a line
# longer than 78 characters, trailing-space-free text throughout.
TEXT=$(cat <<'EOF'
Hello from the outbound interop suite.
.A line that starts with a dot.
.
..Two dots, then the lone dot above.
From the start of a line, as mbox would escape it.
Non-ASCII: Räksmörgås, blåbærsyltetøy, 日本語のテキスト, ✓ — “quotes”.
A long line: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.
Last line.
EOF
)
HTML=$(cat <<'EOF'
<!DOCTYPE html>
<html><body>
<p>Hello from the <b>outbound</b> interop suite.</p>
<p>.A paragraph that starts with a dot.</p>
<p>Non-ASCII: Räksmörgås, blåbærsyltetøy, 日本語, ✓ &amp; &lt;escaped&gt;.</p>
</body></html>
EOF
)
ATTACHMENT=$WORK/report.pdf
# Binary content: every byte value, CR and LF alone, NULs, more than one
# base64 line.
$PY -c 'import sys; sys.stdout.buffer.write(b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\r\n\r\x00\n%%EOF\n")' >"$ATTACHMENT"

# case_env LISTENER CASE: the environment a client runs with.
case_env() {
	local listener=$1 case=$2
	export SMTP_HOST=localhost SMTP_SECURITY=$listener SMTP_CA_FILE=$CA
	if [ "$listener" = implicit ]; then SMTP_PORT=$IMPLICIT_PORT; else SMTP_PORT=$STARTTLS_PORT; fi
	export SMTP_PORT SMTP_USER=$SENDER SMTP_PASS=$SENDER_PASS
	export MAIL_FROM=$SENDER MAIL_FROM_NAME="Interop Sender" MAIL_SUBJECT="Interop: text and HTML"
	export MAIL_TEXT=$TEXT MAIL_HTML=$HTML
	export MAIL_ATTACHMENT= MAIL_ATTACHMENT_NAME= MAIL_ATTACHMENT_TYPE=
	case $case in
	attachment)
		MAIL_FROM_NAME="Åsa Öberg-Ødegård (山田 太郎)"
		MAIL_SUBJECT="Rapport: räksmörgås, 日本語の件名 ✓ — and a subject long enough that it has to be folded"
		MAIL_HTML=
		MAIL_ATTACHMENT=$ATTACHMENT MAIL_ATTACHMENT_NAME=report.pdf MAIL_ATTACHMENT_TYPE=application/pdf
		;;
	wrong-password) SMTP_PASS=not-the-password ;;
	foreign-from) MAIL_FROM=ceo@elsewhere.test ;;
	over-limit) SMTP_USER=$LIMITED SMTP_PASS=$LIMITED_PASS MAIL_FROM=$LIMITED ;;
	untrusted-cert) SMTP_CA_FILE=$OTHER_CA ;;
	esac
}

# client_cmd CLIENT: prints nothing, sets CMD to the command line.
client_cmd() {
	local c=$ROOT/interop/clients
	case $1 in
	nodemailer) CMD=(node "$c/nodemailer.js") ;;
	smtplib) CMD=("$PY" "$c/smtplib_client.py") ;;
	django) CMD=("$PY" "$c/django_client.py") ;;
	phpmailer) CMD=(php "$c/phpmailer.php") ;;
	ruby-mail) CMD=(ruby "$c/ruby_mail.rb") ;;
	jakarta-mail) CMD=(java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "$JAKARTA_CP" "$c/JakartaMailClient.java") ;;
	swaks) CMD=(sh "$c/swaks.sh") ;;
	msmtp) CMD=(sh "$c/msmtp.sh") ;;
	*) return 1 ;;
	esac
}

# installed CLIENT: is the client there at all?
installed() {
	case $1 in
	nodemailer) [ -f "$ROOT/interop/node_modules/nodemailer/package.json" ] && command -v node ;;
	smtplib) [ -x "$PY" ] ;;
	django) "$PY" -c 'import django' ;;
	phpmailer) command -v php && [ -f /usr/share/php/libphp-phpmailer/autoload.php ] ;;
	ruby-mail) command -v ruby && ruby -e 'require "mail"' ;;
	jakarta-mail) command -v java && [ -f /usr/share/java/jakarta-mail.jar ] && [ -f /usr/share/java/jakarta-activation.jar ] ;;
	swaks) command -v swaks && command -v perl ;;
	msmtp) command -v msmtp ;;
	esac
}

# What each refusal must show the user: the relay's own explanation.
expected_text() {
	case $1 in
	wrong-password) echo "Authentication failed: user name or password is wrong" ;;
	foreign-from) echo "is not allowed for user" ;;
	over-limit) echo "hourly limit of 1 reached" ;;
	esac
}
# Wording differs per TLS library; any of these names the certificate problem.
CERT_ERROR='certificat|verif|trust|PKIX|unknown ca|issuer'

# wait_received FILE: the upstream gets the message shortly after the 250.
wait_received() {
	local i
	for i in $(seq 1 150); do
		[ -f "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# run_case CLIENT LISTENER CASE
run_case() {
	local client=$1 listener=$2 case=$3 name="$1 $2 $3"
	local log=$WORK/clients/$client-$listener-$case.log rc
	(
		case_env "$listener" "$case"
		export MAIL_TO="$client-$listener-$case@dest.interop.test"
		[ "$client" = msmtp ] && export MSMTP_SENT_COPY=$WORK/clients/$client-$listener-$case.sent
		client_cmd "$client"
		exec timeout 60 "${CMD[@]}"
	) </dev/null >"$log" 2>&1
	rc=$?
	local rcpt="$client-$listener-$case@dest.interop.test"
	local received=$WORK/received/$rcpt.eml
	case $case in
	multipart | attachment)
		if [ "$rc" != 0 ]; then
			fail "$name" "client exited $rc: $(oneline "$log")"
			return
		fi
		if ! wait_received "$received"; then
			fail "$name" "the client succeeded but nothing reached the upstream within 15s"
			return
		fi
		local sent=()
		[ -s "$WORK/clients/$client-$listener-$case.sent" ] && sent=("$WORK/clients/$client-$listener-$case.sent")
		(case_env "$listener" "$case" && export MAIL_TO="$rcpt" && "$PY" "$ROOT/interop/check.py" "$case" "$received" "${sent[@]}") \
			>"$log.check" 2>&1 || {
			fail "$name" "$(oneline "$log.check")"
			return
		}
		pass "$name"
		;;
	untrusted-cert)
		if [ "$rc" = 0 ]; then
			fail "$name" "the client sent although it does not trust the relay's certificate"
		elif ! grep -Eqi "$CERT_ERROR" "$log"; then
			fail "$name" "the client's error does not name the certificate: $(oneline "$log")"
		elif [ -f "$received" ]; then
			fail "$name" "the message reached the upstream"
		else
			pass "$name"
		fi
		;;
	*)
		local want
		want=$(expected_text "$case")
		if [ "$rc" = 0 ]; then
			fail "$name" "the client reported success; want an error containing \"$want\""
		elif [ "$rc" = 124 ]; then
			fail "$name" "the client hung (killed after 60s): $(oneline "$log")"
		elif ! grep -qF "$want" "$log"; then
			fail "$name" "the client's error lacks \"$want\": $(oneline "$log")"
		elif [ -f "$received" ]; then
			fail "$name" "the message reached the upstream"
		else
			pass "$name"
		fi
		;;
	esac
}

# --- use up the limited user's one message with the simplest client ---------------
(
	case_env starttls multipart
	export SMTP_USER=$LIMITED SMTP_PASS=$LIMITED_PASS MAIL_FROM=$LIMITED MAIL_TO=limit-setup@dest.interop.test
	"$PY" interop/clients/smtplib_client.py
) >"$WORK/clients/limit-setup.log" 2>&1 || die "the limited user's first message was refused: $(oneline "$WORK/clients/limit-setup.log")"
wait_received "$WORK/received/limit-setup@dest.interop.test.eml" || die "the limited user's first message never reached the upstream"

# --- the matrix ---------------------------------------------------------------------
for client in $CLIENTS; do
	if ! client_cmd "$client"; then
		fail "$client" "unknown client (known: $ALL_CLIENTS)"
		continue
	fi
	if ! installed "$client" >/dev/null 2>&1; then
		for listener in $LISTENERS; do
			for case in $CASES; do
				fail "$client $listener $case" "$client is not installed: run scripts/install-interop-deps.sh"
			done
		done
		continue
	fi
	for listener in $LISTENERS; do
		for case in $CASES; do
			run_case "$client" "$listener" "$case"
		done
	done
done

# The snippets in docs/clients.md are these clients, verbatim.
if out=$("$PY" "$ROOT/interop/docs_snippets.py" check 2>&1); then
	pass "docs clients.md snippets"
else
	fail "docs clients.md snippets" "$out"
fi

# Nothing refused may arrive late, and nothing may arrive twice.
sleep 1
for f in "$WORK"/received/*.eml; do
	[ -e "$f" ] || continue
	rcpt=$(basename "$f" .eml)
	case $rcpt in
	*-multipart@dest.interop.test | *-attachment@dest.interop.test | limit-setup@dest.interop.test) ;;
	*) fail "upstream" "received a message the relay should have refused or sent once: $(basename "$f")" ;;
	esac
done
if ! kill -0 "$RELAY_PID" 2>/dev/null; then
	fail "relay" "the relay exited during the run: $(oneline "$WORK/relay.log")"
fi

echo "interop: $(($(date +%s) - started))s" >&2
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
