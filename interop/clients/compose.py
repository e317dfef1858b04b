"""Writes the message described by the environment to stdout, as an app
would before piping it to sendmail/msmtp (see interop/run.sh)."""
import os
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email import policy

env = os.environ
msg = EmailMessage()
msg["From"] = Address(env["MAIL_FROM_NAME"], addr_spec=env["MAIL_FROM"])
msg["To"] = env["MAIL_TO"]
msg["Subject"] = env["MAIL_SUBJECT"]
msg.set_content(env["MAIL_TEXT"])
if env.get("MAIL_HTML"):
    msg.add_alternative(env["MAIL_HTML"], subtype="html")
if env.get("MAIL_ATTACHMENT"):
    maintype, subtype = env["MAIL_ATTACHMENT_TYPE"].split("/")
    with open(env["MAIL_ATTACHMENT"], "rb") as f:
        msg.add_attachment(f.read(), maintype=maintype, subtype=subtype,
                           filename=env["MAIL_ATTACHMENT_NAME"])
sys.stdout.buffer.write(msg.as_bytes(policy=policy.SMTP))
