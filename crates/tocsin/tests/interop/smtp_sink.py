"""A real SMTP server on loopback (aiosmtpd) for the paging tests.

Prints one JSON line `{"port": N}` once it listens, then one JSON line per message it
accepts: `{"mail_from", "rcpt_tos", "subject", "message_id", "body", "peer_port",
"encrypted", "login"}` (subject and body decoded; the client's port tells one connection from
another). Runs until its standard input closes.

    smtp_sink.py                                  plain SMTP
    smtp_sink.py --starttls CERT KEY              STARTTLS offered and required
    smtp_sink.py --tls CERT KEY                   TLS from the first byte (SMTPS)
    smtp_sink.py ... --auth USER:PASSWORD         AUTH PLAIN/LOGIN required, with this account
    smtp_sink.py ... --port N                     listen on port N (default: a free one)
"""

import argparse
import email
import email.policy
import json
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Print:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(
            json.dumps(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "subject": str(message["subject"]),
                    "message_id": str(message["message-id"]),
                    "body": message.get_body().get_content(),
                    "peer_port": session.peer[1],
                    "encrypted": server.transport.get_extra_info("ssl_object") is not None,
                    "login": session.auth_data if session.authenticated else None,
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Account:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=self.user.decode() if ok else None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", metavar="USER:PASSWORD")
    parser.add_argument("--port", type=int)
    arguments = parser.parse_args()
    options = {}
    if arguments.starttls or arguments.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*(arguments.starttls or arguments.tls))
        if arguments.starttls:
            options.update(tls_context=context, require_starttls=True)
        else:
            options.update(ssl_context=context)
    if arguments.auth:
        user, password = arguments.auth.split(":", 1)
        options.update(authenticator=Account(user, password), auth_required=True)
        # AUTH only after STARTTLS when it is offered. (aiosmtpd does not count TLS from the
        # first byte as TLS for this check, and plain SMTP with AUTH is allowed for tests.)
        options.update(auth_require_tls=bool(arguments.starttls))
    port = arguments.port or free_port()
    controller = Controller(Print(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print(json.dumps({"port": port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
