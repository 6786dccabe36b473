"""A TCP forwarder from the root namespace's loopback into a port inside another network namespace.

The root namespace gets no link, address or route towards a test's namespaces, so the only way in is a
socket created inside the target namespace. ``setns()`` moves only the calling thread, and a socket
stays in the namespace it was created in: one dedicated thread enters the namespace once and creates
sockets there on request; every other thread (accepting, connecting, copying) stays where it is.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from concurrent.futures import Future

from meshroute.lab.netns import setns_current_thread

log = logging.getLogger("meshroute.lab.proxy")
_BUF = 65536


class NetnsSocketFactory:
    """Creates sockets inside a named network namespace, from a thread that lives there."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._requests: queue.SimpleQueue[tuple[int, int, Future[socket.socket]] | None] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        # the thread keeps a reference to the namespace while it lives: close() before deleting it
        self._thread = threading.Thread(target=self._serve, name=f"netns-{netns}", daemon=True)
        self._thread.start()
        self._ready.result(timeout=10)

    def _serve(self) -> None:
        try:
            setns_current_thread(self.netns)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        while (item := self._requests.get()) is not None:
            family, kind, result = item
            try:
                result.set_result(socket.socket(family, kind))
            except BaseException as exc:
                result.set_exception(exc)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        if not self._thread.is_alive():
            raise RuntimeError(f"the socket factory for {self.netns} is closed")
        result: Future[socket.socket] = Future()
        self._requests.put((family, kind, result))
        return result.result(timeout=10)

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=10)


class _Connection:
    """One client connection and its upstream; closed when both directions are done."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self._open = 2
        self._lock = threading.Lock()

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_BUF):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)  # pass the half-close on: HTTP/1.1 clients may rely on it
        except OSError:
            # a reset on one side: make the other side see it at once (no half-open leftovers)
            self.abort()
        finally:
            with self._lock:
                self._open -= 1
                last = self._open == 0
            if last:
                self.close()

    def abort(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class TcpForwarder:
    """Listens on ``listen_host``:free port in the caller's namespace; each connection is relayed to
    ``target`` as seen from inside ``netns``. A connection whose upstream cannot be reached (server
    stopped) is closed at once, so clients see a closed connection, never a hang."""

    def __init__(
        self,
        netns: str,
        target: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.netns = netns
        self.target = target
        self.connect_timeout = connect_timeout
        self._factory = NetnsSocketFactory(netns)
        self._listener = socket.create_server((listen_host, listen_port), backlog=64)
        self._listener.settimeout(0.2)  # a closing forwarder is noticed within 0.2 s
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"fwd-{netns}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._closed.is_set():
                    return
                log.warning("forwarder to %s in %s: accept failed: %s", self.target, self.netns, exc)
                time.sleep(0.05)  # e.g. out of file descriptors: keep serving once some are free
                continue
            threading.Thread(target=self._handle, args=(client,), name="fwd-conn", daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = self._factory.socket(socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET)
        except (OSError, RuntimeError):
            client.close()
            return
        try:
            upstream.settimeout(self.connect_timeout)
            upstream.connect(self.target)
            upstream.settimeout(None)
        except OSError:
            upstream.close()
            client.close()
            return
        conn = _Connection(client, upstream)
        with self._lock:
            if self._closed.is_set():
                conn.close()
                return
            self._conns.add(conn)
        back = threading.Thread(target=conn.pump, args=(upstream, client), name="fwd-back", daemon=True)
        back.start()
        try:
            conn.pump(client, upstream)
        finally:
            back.join()
            with self._lock:
                self._conns.discard(conn)

    def drop_connections(self) -> None:
        """Reset every relayed connection (e.g. after the server behind them was restarted)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.abort()

    def close(self) -> None:
        """Stop listening and close every relayed socket: sockets created in the namespace keep it alive,
        so they must be gone before the namespace is deleted."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() at once (Linux)
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._conns:
                    break
            time.sleep(0.005)
        self._factory.close()
