#!/usr/bin/python3
"""A real SMTP server for tests and the local suite (aiosmtpd, Debian python3-aiosmtpd), on 127.0.0.1.

Listens on port 0 and writes the port it got to --port-file (atomically, so a reader that sees
the file sees the whole number). Stores every accepted message in --dir as msg-NNNNN.eml (the
bytes received, dot-unstuffed) and msg-NNNNN.json ({"mail_from", "rcpt_tos", "peer_port",
"tls", "auth_login", "accepted_at"}); peer_port tells messages sent over one connection apart
from others, accepted_at is when the data was received (Unix seconds, from the system clock:
bench/sense-respond.sh measures up to it).

Faults: the file <dir>/faults holds one fault a line, "<stage> <action>", stage rcpt or data,
action 450, 421, 550 (answer that code; 421 closes the connection after answering, as a
shutting-down server does), ok (go on as usual: a placeholder that keeps later lines for later
messages) or drop (data stage: store the message, then drop the connection
without answering — the case where a client cannot know the message arrived; rcpt stage: drop
at once). When a message reaches a stage and the first line names that stage, the line is taken
off and applied; write the file before sending.

Options: --auth LOGIN:PASSWORD offers AUTH (PLAIN, LOGIN) without TLS; --tls-cert/--tls-key
offer STARTTLS with that certificate; --idle-timeout SECONDS closes idle connections (as relays
do); --no-fsync stores messages without waiting for the disk (benchmarks: the server is then not
what limits the rate). <dir>/closed counts the connections closed so far, by either side.

Run with /usr/bin/python3 (aiosmtpd is a Debian package, not in other interpreters' paths).
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_REPLIES = {
    "450": "450 4.2.1 Mailbox busy, try again later",
    "421": "421 4.3.2 Service shutting down, closing transmission channel",
    "550": "550 5.1.1 Mailbox unavailable",
}
_DROP = "999 drop"  # never sent: FaultySMTP.push drops the connection instead


FSYNC = True


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if FSYNC:
            os.fsync(f.fileno())
    os.rename(tmp, path)


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.closed = 0

    def take_fault(self, stage):
        path = os.path.join(self.directory, "faults")
        try:
            with open(path) as f:
                lines = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return None
        if not lines or lines[0][0] != stage:
            return None
        fault = lines[0][1]
        write_atomically(path, "".join(" ".join(line) + "\n" for line in lines[1:]).encode())
        return fault

    def reply_for(self, fault):
        if fault == "drop":
            return _DROP
        return _REPLIES.get(fault, fault + " test fault")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self.take_fault("rcpt")
        if fault is not None and fault != "ok":
            return self.reply_for(fault)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        accepted_at = time.time()
        fault = self.take_fault("data")
        if fault is not None and fault not in ("drop", "ok"):
            return self.reply_for(fault)
        self.count += 1
        base = os.path.join(self.directory, "msg-%05d" % self.count)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "peer_port": session.peer[1],
            "tls": session.ssl is not None,
            "auth_login": (session.login_data or b"").decode() if session.authenticated else None,
            "accepted_at": accepted_at,
        }
        write_atomically(base + ".json", json.dumps(meta).encode())
        write_atomically(base + ".eml", envelope.original_content or envelope.content)
        if fault == "drop":
            return _DROP
        return "250 2.0.0 Ok: queued as %05d" % self.count


class FaultySMTP(SMTP):
    def connection_lost(self, error):
        super().connection_lost(error)
        handler = self.event_handler
        handler.closed += 1
        write_atomically(os.path.join(handler.directory, "closed"), str(handler.closed).encode())

    async def push(self, status):
        if status == _DROP:
            self.transport.abort()
            return
        await super().push(status)
        if isinstance(status, str) and status.startswith("421"):
            self.transport.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 (tests): any free one")
    parser.add_argument("--auth")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--idle-timeout", type=float, help="close a connection idle this many seconds")
    parser.add_argument("--no-fsync", action="store_true", help="do not wait for the disk when storing a message")
    args = parser.parse_args()
    global FSYNC
    FSYNC = not args.no_fsync

    handler = Handler(args.dir)
    kwargs = {"hostname": "localhost", "data_size_limit": 10 * 1024 * 1024}
    if args.idle_timeout:
        kwargs["timeout"] = args.idle_timeout
    if args.auth:
        login, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == login and \
                auth_data.password.decode() == password
            # handled=False: aiosmtpd answers 535 itself on failure.
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kwargs.update(authenticator=authenticator, auth_require_tls=False)
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        kwargs["tls_context"] = context

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: FaultySMTP(handler, loop=loop, **kwargs), host="127.0.0.1", port=args.port))
    port = server.sockets[0].getsockname()[1]
    write_atomically(args.port_file, str(port).encode())
    print("smtp_server listening on 127.0.0.1:%d" % port, flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
