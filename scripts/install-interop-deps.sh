#!/bin/sh
# Installs every real client the interop suite (interop/run.sh) drives, on
# Debian 12, with apt and npm only: Nodemailer (npm, pinned in
# interop/package-lock.json), Python smtplib and Django, PHPMailer, Ruby
# `mail`, Jakarta Mail on the default JRE, swaks, msmtp, and openssl for
# the test CA.
#
# Idempotent: installs only what is missing, runs `apt-get update` at most
# once, and skips `npm ci` when the pinned Nodemailer is already there.
# Runs as root, or as a user with sudo.
set -e
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive

# Debian package → a file that is there once it is installed (a glob is
# fine). Files rather than commands, because several are libraries. Django
# and the other Python code use Debian's /usr/bin/python3.
missing=""
need() { ls $2 >/dev/null 2>&1 || missing="$missing $1"; }
need python3              /usr/bin/python3
need python3-django       /usr/lib/python3/dist-packages/django/__init__.py
need php-cli              /usr/bin/php
need libphp-phpmailer     /usr/share/php/libphp-phpmailer/autoload.php
need ruby                 /usr/bin/ruby
need ruby-mail            '/usr/share/rubygems-integration/all/specifications/mail-*.gemspec'
need default-jre-headless /usr/bin/java
need libjakarta-mail-java /usr/share/java/jakarta-mail.jar
need swaks                /usr/bin/swaks
# swaks speaks TLS through Net::SSLeay, only a recommendation of its package.
need libnet-ssleay-perl   '/usr/lib/x86_64-linux-gnu/perl5/*/Net/SSLeay.pm'
need msmtp                /usr/bin/msmtp
need openssl              /usr/bin/openssl
need ca-certificates      /etc/ssl/certs/ca-certificates.crt
# Node.js may come from elsewhere (NodeSource ships npm inside its nodejs
# package, which conflicts with Debian's npm): install Debian's only when
# there is none at all.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
	echo "install-interop-deps: installing:$missing"
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	echo "install-interop-deps: warning: Node.js $(node --version) is older than 20, which the pinned Nodemailer requires" >&2
fi

# Nodemailer, exactly as pinned by interop/package-lock.json.
pinned=$(node -p 'require("./interop/package-lock.json").packages["node_modules/nodemailer"].version')
have=$(node -p 'try { require("./interop/node_modules/nodemailer/package.json").version } catch (e) { "" }')
if [ "$have" != "$pinned" ]; then
	echo "install-interop-deps: npm ci (nodemailer $pinned)"
	(cd interop && npm ci --no-audit --no-fund --loglevel=error)
fi
