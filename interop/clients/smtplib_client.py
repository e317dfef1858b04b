"""Sends one message through the relay with Python's smtplib.

Settings and message come from the environment (see interop/run.sh).
"""
import os
import smtplib
import ssl
import sys
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

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

# Verifies the relay's certificate and host name; cafile only for a
# certificate that is not publicly trusted.
context = ssl.create_default_context(cafile=env.get("SMTP_CA_FILE") or None)
host, port = env["SMTP_HOST"], int(env["SMTP_PORT"])

try:
    if env["SMTP_SECURITY"] == "implicit":          # port 465
        smtp = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
    else:                                           # port 587
        smtp = smtplib.SMTP(host, port, timeout=30)
    with smtp:
        if env["SMTP_SECURITY"] != "implicit":
            smtp.starttls(context=context)
        smtp.login(env["SMTP_USER"], env["SMTP_PASS"])
        # Not smtp.send_message(msg): it flattens the message with
        # mangle_from_=True, turning body lines that start with "From " into
        # ">From ". as_bytes() sends the message exactly as built.
        smtp.sendmail(env["MAIL_FROM"], [env["MAIL_TO"]], msg.as_bytes(policy=policy.SMTP))
except (smtplib.SMTPException, OSError) as e:
    # SMTPAuthenticationError, SMTPSenderRefused, SMTPRecipientsRefused and
    # SMTPDataError all carry the relay's code and explanation.
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print("sent")
