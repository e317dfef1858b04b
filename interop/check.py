"""Compares a message the recording upstream received with what the client
was told to send (the MAIL_* environment variables, see run.sh).

    check.py multipart|attachment RECEIVED.eml [SENT.eml]

The relay may only add header fields. So the received message must have
the From (address and decoded display name), To and decoded Subject the
client was given, and exactly the expected MIME tree:

    multipart:   multipart/alternative [text/plain, text/html]
    attachment:  multipart/mixed [text/plain, MAIL_ATTACHMENT_TYPE]

with every text part's decoded content equal to MAIL_TEXT / MAIL_HTML (up
to line endings and trailing newlines, which SMTP and encoders own) and
the attachment's decoded bytes and file name equal to the file's. With
SENT.eml (the exact bytes a client sent, when it is known), the received
message must be SENT.eml with header fields prepended and nothing else
changed. Prints one line saying what differs and exits 1, or exits 0.
"""
import os
import re
import sys
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser


class Mismatch(Exception):
    pass


def norm(text):
    return text.replace("\r\n", "\n").rstrip("\n")


def tree(part):
    if part.is_multipart():
        return "%s[%s]" % (part.get_content_type(), ",".join(tree(p) for p in part.iter_parts()))
    return part.get_content_type()


def expect(what, got, want):
    if got == want:
        return
    if isinstance(got, str) and isinstance(want, str) and max(len(got), len(want)) > 120:
        # Long texts: show where they part.
        i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        lo = max(0, i - 30)
        raise Mismatch("%s differs at character %d: got %r, want %r"
                       % (what, i, got[lo:i + 50], want[lo:i + 50]))
    raise Mismatch("%s: got %r, want %r" % (what, shorten(got), shorten(want)))


def shorten(v):
    if isinstance(v, (str, bytes)) and len(v) > 120:
        return v[:120] + (b"..." if isinstance(v, bytes) else "...")
    return v


def raw_display_name(raw):
    """Decodes the display name of a From header by RFC 2047 alone.

    Python's address parser puts a space between adjacent encoded words
    when one ends just before a ")" ("(=?UTF-8?Q?...?= =?UTF-8?Q?=29?="
    decodes to "(... )"), which Nodemailer writes for a name ending in
    ")". decode_header joins them as RFC 2047 says.
    """
    value = re.sub(r"\r?\n(?=[ \t])", "", str(raw))
    name = value[: value.rfind("<")].strip()
    name = str(make_header(decode_header(name)))
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def check_text(part, want, what):
    expect(what + " content", norm(part.get_content()), norm(want))


def check(case, received, sent=None):
    env = os.environ
    msg = BytesParser(policy=policy.default).parsebytes(received)
    if msg.defects:
        raise Mismatch("message defects: %s" % msg.defects)

    froms = msg["From"].addresses if msg["From"] else ()
    expect("From count", len(froms), 1)
    expect("From address", froms[0].addr_spec, env["MAIL_FROM"])
    if froms[0].display_name != env["MAIL_FROM_NAME"]:
        raw = BytesParser(policy=policy.compat32).parsebytes(received, headersonly=True)["From"]
        expect("From display name", raw_display_name(raw), env["MAIL_FROM_NAME"])
    tos = msg["To"].addresses if msg["To"] else ()
    expect("To", [a.addr_spec for a in tos], [env["MAIL_TO"]])
    # Django folds a long Subject right after the colon; the whitespace that
    # unfolding leaves in front is not part of the text.
    expect("Subject", str(msg["Subject"]).strip(), env["MAIL_SUBJECT"])

    if case == "multipart":
        expect("MIME tree", tree(msg), "multipart/alternative[text/plain,text/html]")
        text, html = msg.get_payload()
        check_text(text, env["MAIL_TEXT"], "text/plain part")
        check_text(html, env["MAIL_HTML"], "text/html part")
    elif case == "attachment":
        want_type = env["MAIL_ATTACHMENT_TYPE"]
        expect("MIME tree", tree(msg), "multipart/mixed[text/plain,%s]" % want_type)
        text, att = msg.get_payload()
        check_text(text, env["MAIL_TEXT"], "text/plain part")
        expect("attachment disposition", att.get_content_disposition(), "attachment")
        expect("attachment file name", att.get_filename(), env["MAIL_ATTACHMENT_NAME"])
        with open(env["MAIL_ATTACHMENT"], "rb") as f:
            want = f.read()
        got = att.get_payload(decode=True)
        if got != want:
            raise Mismatch("attachment bytes differ: got %d bytes, want %d" % (len(got), len(want)))
    else:
        raise Mismatch("unknown case %r" % case)

    if sent is not None:
        check_prefix_only(received, sent)


def check_prefix_only(received, sent):
    rec = received.replace(b"\r\n", b"\n")
    snt = sent.replace(b"\r\n", b"\n")
    if not rec.endswith(snt):
        raise Mismatch("the received message is not the sent one with headers prepended")
    added = rec[: len(rec) - len(snt)].decode("utf-8", "replace")
    for line in added.splitlines():
        if not re.match(r"[!-9;-~]+:|[ \t]", line):
            raise Mismatch("the relay prepended a line that is no header field: %r" % line)


def main():
    case, received = sys.argv[1], sys.argv[2]
    with open(received, "rb") as f:
        data = f.read()
    sent = None
    if len(sys.argv) > 3:
        with open(sys.argv[3], "rb") as f:
            sent = f.read()
    try:
        check(case, data, sent)
    except Mismatch as e:
        print(e)
        sys.exit(1)
    except Exception as e:  # a message the parser chokes on is a mismatch too
        print("cannot check %s: %s: %s" % (os.path.basename(received), type(e).__name__, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
