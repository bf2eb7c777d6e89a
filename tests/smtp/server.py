"""A real SMTP server for the notification tests (aiosmtpd), on 127.0.0.1 and a free port.

Usage: server.py CERT_PEM KEY_PEM USER PASSWORD

It requires STARTTLS before anything else and AUTH (PLAIN or LOGIN, checked against USER and
PASSWORD) before MAIL, like a submission server on port 587. It prints {"port": N} on its
first line, then one JSON line per message received: the envelope, the raw message, its
headers and decoded body (Python's email parser), and whether the session was encrypted and
authenticated. It exits when its stdin closes.
"""

import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(
            json.dumps(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "headers": {k.lower(): str(v) for k, v in msg.items()},
                    "body": msg.get_content(),
                    "tls": session.ssl is not None,
                    "authenticated": bool(session.authenticated),
                }
            ),
            flush=True,
        )
        return "250 OK"


def main():
    cert, key, user, password = sys.argv[1:5]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    def factory():
        return SMTP(
            Handler(),
            hostname="localhost",
            tls_context=ctx,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticator,
        )

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host="127.0.0.1", port=0)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
