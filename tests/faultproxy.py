#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A Docker Engine API proxy that breaks on demand, for tests/faults.sh.

    tests/faultproxy.py LISTEN_SOCKET DOCKER_SOCKET MODE_FILE

Listens on a UNIX socket and passes each HTTP request to Docker's socket,
or answers it the broken way MODE_FILE (read for every request, and every
0.2 s by a waiting connection or an event stream) says:

    pass        pass the request to Docker (with "Connection: close", so
                that every request is seen here)
    500         HTTP 500 with Docker's JSON error shape
    garbage     HTTP 200 whose body is not JSON
    truncate    HTTP 200 announcing 4096 bytes, sending 10, then closing
    silence     read the request, answer nothing until the mode changes
    cut-events  every event stream open now, and every new one, is cut in
                the middle of a JSON object; other requests pass

Only the test's dovetail talks to it; the test drives Docker itself
through Docker's own socket.
"""
import os
import select
import socket
import socketserver
import sys
import threading
import time

LISTEN, UPSTREAM, MODE_FILE = sys.argv[1:4]


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip() or "pass"
    except OSError:
        return "pass"


def read_head(sock):
    """The request head (bytes up to the blank line), or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    return data


def with_close(head):
    """The head with "Connection: close" instead of any Connection."""
    text, rest = head.split(b"\r\n\r\n", 1)
    lines = [l for l in text.split(b"\r\n")
             if not l.lower().startswith(b"connection:")]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + rest


def reply(sock, status, body, length=None):
    sock.sendall(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                 % (status, len(body) if length is None else length) + body)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        c = self.request
        head = read_head(c)
        if head is None:
            return
        events = b" /events" in head.split(b"\r\n", 1)[0] or \
            b"/events?" in head.split(b"\r\n", 1)[0]
        m = mode()
        if m == "500":
            reply(c, b"500 Internal Server Error",
                  b'{"message":"injected by faultproxy"}\n')
        elif m == "garbage":
            reply(c, b"200 OK", b"\x00\xffnot json at all {[\n")
        elif m == "truncate":
            reply(c, b"200 OK", b'[{"ID":"ab', length=4096)
        elif m == "silence":
            while mode() == "silence":
                time.sleep(0.2)
        elif m == "cut-events" and events:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json"
                      b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"40\r\n{\"Type\":\"service\",\"Action\":\"upd")
        else:
            self.forward(c, head, events)

    def forward(self, c, head, events):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(UPSTREAM)
            u.sendall(with_close(head))
            while True:
                if events and mode() == "cut-events":
                    # Half a chunk, as a stream broken mid-object.
                    c.sendall(b"\r\n40\r\n{\"Type\":\"container\",\"Act")
                    return
                ready, _, _ = select.select([u, c], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (c if s is u else u).sendall(data)
        except OSError:
            return
        finally:
            u.close()


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


if os.path.exists(LISTEN):
    os.unlink(LISTEN)
Server(LISTEN, Handler).serve_forever()
