"""A real SMTP server on loopback (aiosmtpd) for the paging tests.

Prints one JSON line `{"port": N}` once it listens, then one JSON line per message it
accepts: `{"mail_from", "rcpt_tos", "subject", "message_id", "body"}` (subject and body
decoded). Runs until its standard input closes.
"""

import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller


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
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    port = free_port()
    controller = Controller(Print(), hostname="127.0.0.1", port=port)
    controller.start()
    print(json.dumps({"port": port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
