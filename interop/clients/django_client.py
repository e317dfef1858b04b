"""Sends one message through the relay with Django's mail API.

Settings and message come from the environment (see interop/run.sh). In a
project the settings below live in settings.py.
"""
import os
import sys

import django
from django.conf import settings

env = os.environ
settings.configure(
    EMAIL_BACKEND="verifying_smtp.EmailBackend",  # Django 4+: leave the default
    EMAIL_HOST=env["SMTP_HOST"],
    EMAIL_PORT=int(env["SMTP_PORT"]),
    EMAIL_USE_SSL=env["SMTP_SECURITY"] == "implicit",  # 465
    EMAIL_USE_TLS=env["SMTP_SECURITY"] == "starttls",  # 587
    EMAIL_HOST_USER=env["SMTP_USER"],
    EMAIL_HOST_PASSWORD=env["SMTP_PASS"],
    EMAIL_TIMEOUT=30,
    EMAIL_SSL_CAFILE=env.get("SMTP_CA_FILE") or None,  # only for a private CA
)
django.setup()

from django.core.mail import EmailMultiAlternatives, send_mail  # noqa: E402
from email.headerregistry import Address  # noqa: E402

sender = str(Address(env["MAIL_FROM_NAME"], addr_spec=env["MAIL_FROM"]))
try:
    if not env.get("MAIL_ATTACHMENT"):
        send_mail(env["MAIL_SUBJECT"], env["MAIL_TEXT"], sender, [env["MAIL_TO"]],
                  html_message=env.get("MAIL_HTML") or None)
    else:
        msg = EmailMultiAlternatives(env["MAIL_SUBJECT"], env["MAIL_TEXT"], sender, [env["MAIL_TO"]])
        if env.get("MAIL_HTML"):
            msg.attach_alternative(env["MAIL_HTML"], "text/html")
        with open(env["MAIL_ATTACHMENT"], "rb") as f:
            msg.attach(env["MAIL_ATTACHMENT_NAME"], f.read(), env["MAIL_ATTACHMENT_TYPE"])
        msg.send()
except Exception as e:  # smtplib's exceptions carry the relay's reply
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print("sent")
