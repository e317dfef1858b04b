"""Reads a message on stdin (as the upstream received it from the send
API) and prints what Python's email package makes of it, as JSON: the
decoded header fields, the MIME tree, each leaf's charset, filename,
Content-ID and the SHA-256 of its decoded payload."""
import email
import email.policy
import hashlib
import json
import sys

msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)


def tree(part):
    if part.is_multipart():
        return {"type": part.get_content_type(), "parts": [tree(p) for p in part.iter_parts()]}
    payload = part.get_payload(decode=True)
    leaf = {
        "type": part.get_content_type(),
        "charset": part.get_content_charset(),
        "filename": part.get_filename(),
        "content_id": part.get("Content-ID"),
        "disposition": part.get_content_disposition(),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    if part.get_content_maintype() == "text":
        leaf["text"] = part.get_content()
    return leaf


print(json.dumps({
    "subject": str(msg["Subject"]),
    "from": str(msg["From"]),
    "to": str(msg["To"]),
    "bcc": msg["Bcc"],
    "defects": [str(d) for d in msg.defects],
    "tree": tree(msg),
}))
