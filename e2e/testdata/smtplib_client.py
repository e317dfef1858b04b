#!/usr/bin/env python3
"""Submit mail to outbound the way a Python application does, with the
standard library only (smtplib, ssl, email), and report what happened.

Parameters come from the environment:
  OUTBOUND_HOST           host name to connect to and verify ("localhost")
  OUTBOUND_IMPLICIT_PORT  the implicit-TLS listener (465 in production)
  OUTBOUND_STARTTLS_PORT  the STARTTLS listener (587 in production)
  OUTBOUND_CAFILE         PEM CA that issued the relay's certificate
  OUTBOUND_USER, OUTBOUND_PASSWORD   the SMTP login
  OUTBOUND_FROM           an address the login may send as
  OUTBOUND_FOREIGN_FROM   an address it may not send as
  OUTBOUND_TO             the recipient
  OUTBOUND_TOKEN          unique text put in every Subject
  OUTBOUND_BODY           the body of the messages that should be accepted

Every step runs even when an earlier one failed. The script prints one JSON
object, step name -> {"ok": bool, "exception", "code", "message"}, and
leaves the judging to the Go test.
"""

import json
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage

env = os.environ
HOST = env["OUTBOUND_HOST"]
IMPLICIT = int(env["OUTBOUND_IMPLICIT_PORT"])
STARTTLS = int(env["OUTBOUND_STARTTLS_PORT"])
USER, PASSWORD = env["OUTBOUND_USER"], env["OUTBOUND_PASSWORD"]
TOKEN = env["OUTBOUND_TOKEN"]
TIMEOUT = 30


def context():
    # Verifies the chain and the host name, as create_default_context does.
    return ssl.create_default_context(cafile=env["OUTBOUND_CAFILE"])


def message(subject, sender):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = env["OUTBOUND_TO"]
    msg["Subject"] = subject
    msg.set_content(env["OUTBOUND_BODY"])
    return msg


def implicit():
    return smtplib.SMTP_SSL(HOST, IMPLICIT, context=context(), timeout=TIMEOUT)


def starttls():
    s = smtplib.SMTP(HOST, STARTTLS, timeout=TIMEOUT)
    s.starttls(context=context())
    return s


def send_implicit():
    with implicit() as s:
        s.login(USER, PASSWORD)
        s.send_message(message(TOKEN + " implicit", env["OUTBOUND_FROM"]))


def send_starttls():
    with starttls() as s:
        s.login(USER, PASSWORD)
        s.send_message(message(TOKEN + " starttls", env["OUTBOUND_FROM"]))


def login_before_starttls():
    with smtplib.SMTP(HOST, STARTTLS, timeout=TIMEOUT) as s:
        s.login(USER, PASSWORD)


def wrong_password():
    with implicit() as s:
        s.login(USER, PASSWORD + "-wrong")


def foreign_envelope_from():
    # send_message takes the envelope sender from the From header.
    with implicit() as s:
        s.login(USER, PASSWORD)
        s.send_message(message(TOKEN + " foreign envelope", env["OUTBOUND_FOREIGN_FROM"]))


def foreign_header_from():
    # An allowed envelope sender does not excuse a foreign From header.
    with starttls() as s:
        s.login(USER, PASSWORD)
        s.send_message(message(TOKEN + " foreign header", env["OUTBOUND_FOREIGN_FROM"]),
                       from_addr=env["OUTBOUND_FROM"])


def without_ca():
    # The system trust store does not know the test CA: verification must fail.
    with smtplib.SMTP_SSL(HOST, IMPLICIT, context=ssl.create_default_context(), timeout=TIMEOUT):
        pass


def run(step):
    try:
        step()
        return {"ok": True}
    except smtplib.SMTPResponseException as e:
        # SMTPAuthenticationError, SMTPSenderRefused, SMTPDataError, ...
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        return {"ok": False, "exception": type(e).__name__, "code": e.smtp_code, "message": text}
    except smtplib.SMTPRecipientsRefused as e:
        code, text = next(iter(e.recipients.values()))
        return {"ok": False, "exception": type(e).__name__, "code": code,
                "message": text.decode("utf-8", "replace")}
    except Exception as e:  # noqa: BLE001 - reported, judged by the Go test
        return {"ok": False, "exception": type(e).__name__, "message": str(e)}


STEPS = [send_implicit, send_starttls, login_before_starttls, wrong_password,
         foreign_envelope_from, foreign_header_from, without_ca]

if __name__ == "__main__":
    json.dump({step.__name__: run(step) for step in STEPS}, sys.stdout, indent=2)
    print()
