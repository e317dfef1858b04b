#!/bin/sh
# Sends one message through the relay with swaks, which builds the MIME
# message itself from --attach-body / --attach. Headers with non-ASCII text
# must be RFC 2047-encoded by the caller; perl's Encode does it here.
# Settings and message come from the environment (see interop/run.sh).
set -e
mime() { perl -CA -MEncode -e 'print encode("MIME-Header", $ARGV[0])' "$1"; }

if [ "$SMTP_SECURITY" = implicit ]; then tls=--tls-on-connect; else tls=--tls; fi
set -- --server "$SMTP_HOST" --port "$SMTP_PORT" $tls --tls-verify \
	--auth PLAIN --auth-user "$SMTP_USER" --auth-password "$SMTP_PASS" \
	--from "$MAIL_FROM" --to "$MAIL_TO" \
	--h-From "$(mime "$MAIL_FROM_NAME") <$MAIL_FROM>" \
	--h-Subject "$(mime "$MAIL_SUBJECT")" \
	--attach-type 'text/plain; charset=UTF-8' --attach-body "$MAIL_TEXT"
# Only for a certificate that is not publicly trusted:
[ -n "$SMTP_CA_FILE" ] && set -- "$@" --tls-ca-path "$SMTP_CA_FILE"
[ -n "$MAIL_HTML" ] && set -- "$@" --attach-type 'text/html; charset=UTF-8' --attach-body "$MAIL_HTML"
[ -n "$MAIL_ATTACHMENT" ] && set -- "$@" \
	--attach-type "$MAIL_ATTACHMENT_TYPE" --attach-name "$MAIL_ATTACHMENT_NAME" --attach "@$MAIL_ATTACHMENT"
# swaks prints the whole conversation, the relay's replies included, and
# exits non-zero when the relay refuses.
exec swaks "$@"
