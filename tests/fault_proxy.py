"""A TCP proxy that injects the faults object storage really has, between jobs and moto's server.

Point ``AWS_ENDPOINT_URL`` at ``proxy.url`` and switch its mode while a job runs:

- ``pass``: bytes flow both ways unchanged;
- ``reset``: every connection, open or new, is reset (RST), as by a restarting load balancer;
- ``refuse``: nothing listens on the port (connection refused), as while an endpoint restarts;
- ``error``: each request gets an S3 error response (503 SlowDown, 500 InternalError, in turn)
  without reaching the server, for ``burst`` requests, then the mode goes back to ``pass``.

Written for the tests on sockets and threads: no proxy on PyPI injects resets and refusals on
command, and this one is ~100 lines.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

ERRORS = [(503, "SlowDown", "Please reduce your request rate."),
          (500, "InternalError", "We encountered an internal error. Please try again.")]


class FaultProxy:
    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.mode, self.burst = "pass", 0
        self.counts = {"reset": 0, "error": 0, "passed": 0}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stop = False
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def set(self, mode: str, burst: int = 0) -> None:
        with self._lock:
            self.mode, self.burst = mode, burst
            if mode != "pass":
                for conn in list(self._open):  # pooled keep-alive connections too
                    _reset(conn)
                self._open.clear()

    def close(self) -> None:
        self._stop = True
        self.set("refuse")

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept_loop(self) -> None:
        while not self._stop:
            if self.mode == "refuse":
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                time.sleep(0.02)
                continue
            if self._listener is None:
                self._listener = self._listen(self.port)
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if ready:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        mode = self.mode
        if mode == "reset" or mode == "refuse":
            self.counts["reset"] += 1
            _reset(conn)
        elif mode == "error":
            self._answer_error(conn)
        else:
            self._pipe(conn)

    def _answer_error(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            status, code, message = ERRORS[self.counts["error"] % len(ERRORS)]
            body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>{message}</Message></Error>").encode()
            conn.sendall(f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
        conn.close()
        with self._lock:
            self.counts["error"] += 1
            self.burst -= 1
            if self.mode == "error" and self.burst <= 0:
                self.mode = "pass"

    def _pipe(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            _reset(conn)
            return
        with self._lock:
            self._open.update((conn, upstream))
        self.counts["passed"] += 1
        sockets = [conn, upstream]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is conn else conn).sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
                self._open.discard(upstream)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def _reset(conn: socket.socket) -> None:
    """Close with an RST rather than a FIN: the peer sees "connection reset by peer"."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
