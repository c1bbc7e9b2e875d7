#!/usr/bin/python3
"""A real SMTP server for the tests (Debian's python3-aiosmtpd): captures every message.

    smtp_capture.py OUT_DIR [PORT]

Prints "listening PORT" once it accepts connections. Each accepted message is written to
OUT_DIR/NNNN.eml (its bytes as received) with OUT_DIR/NNNN.json: the envelope and the message
as Python's email package reads it (headers, subject decoded, text and HTML bodies decoded),
so that the tests judge the MIME Garde wrote with a parser that is not Garde's.
OUT_DIR/tls.crt and OUT_DIR/tls.key, when present at start, make it offer and require
STARTTLS with that certificate. OUT_DIR/mode, when present, says how to answer the next recipients: "accept" (default),
"tempfail" (451) or "permfail" (550). A server that vanishes is this process stopped, and
started again on the same PORT. Without them
STARTTLS is not offered: garde runs with smtp_tls: none against it. AUTH PLAIN is accepted for the user and
password in OUT_DIR/auth ("user:password") when that file exists.
"""
import asyncio
import json
import os
import signal
import socket
import ssl
import sys
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)


def mode():
    try:
        with open(os.path.join(OUT, "mode")) as f:
            return f.read().strip() or "accept"
    except FileNotFoundError:
        return "accept"


class Capture:
    def __init__(self):
        self.count = len([n for n in os.listdir(OUT) if n.endswith(".eml")])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        m = mode()
        if m == "tempfail":
            return "451 4.3.0 Try again later"
        if m == "permfail":
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(OUT, "%04d" % self.count)
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "subject": str(message["subject"]),
                       "headers": {k.lower(): str(v) for k, v in message.items()},
                       "content_type": message.get_content_type(),
                       "text": text.get_content() if text else "",
                       "html": html.get_content() if html else ""}, f, ensure_ascii=False)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    try:
        with open(os.path.join(OUT, "auth")) as f:
            user, password = f.read().strip().split(":", 1)
    except FileNotFoundError:
        return AuthResult(success=False, handled=False)
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
tls = {}
if os.path.exists(os.path.join(OUT, "tls.crt")):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(OUT, "tls.crt"), os.path.join(OUT, "tls.key"))
    tls = {"tls_context": context, "require_starttls": True}
# A free port is only free until something binds it: another test's process may take it
# between free_port() and the controller's bind. A port given on the command line (a restart
# on the same address) is tried once.
given = int(sys.argv[2]) if len(sys.argv) > 2 else None
attempts = 1 if given else 5
for attempt in range(attempts):
    port = given or free_port()
    controller = Controller(Capture(), hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_require_tls=False,
                            auth_required=os.path.exists(os.path.join(OUT, "auth")), **tls)
    try:
        controller.start()
        break
    except OSError:
        if attempt == attempts - 1:
            raise
print("listening %d" % port, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
