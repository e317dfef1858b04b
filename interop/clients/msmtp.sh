#!/bin/sh
# Sends one message through the relay with msmtp, the sendmail replacement
# that cron, git send-email, mutt and PHP's mail() are pointed at. msmtp
# sends a message that something else wrote: here compose.py, from the same
# settings the library clients use. The account below is what goes in
# ~/.msmtprc (mode 0600).
# Settings and message come from the environment (see interop/run.sh).
set -e
here=$(dirname "$0")
rc=$(mktemp)
trap 'rm -f "$rc"' EXIT
chmod 600 "$rc"
if [ "$SMTP_SECURITY" = implicit ]; then starttls=off; else starttls=on; fi
cat >"$rc" <<RC
account relay
host $SMTP_HOST
port $SMTP_PORT
tls on
tls_starttls $starttls
tls_trust_file ${SMTP_CA_FILE:-system}
auth on
user $SMTP_USER
password $SMTP_PASS
from $MAIL_FROM
timeout 30
account default : relay
RC
# The message goes in on stdin; -t would take the recipients from its To.
python3 "$here/compose.py" | tee "${MSMTP_SENT_COPY:-/dev/null}" | msmtp --file="$rc" -- "$MAIL_TO"
