"""Traffic probes that say what the far end saw: a "whoami" server that answers every TCP connection or
UDP datagram with the source address it came from, and the matching client.

This is how a test checks masquerading (the LAN sees the routing peer's address) or its absence (the
LAN sees the client's overlay address) without tcpdump's start-up delay and buffering. Standard library
only, run with the project's interpreter in isolated mode (no site-packages: fast start).
"""

from __future__ import annotations

import sys

from meshroute.lab.netns import exec_argv, run

WHOAMI_PORT = 7007

_SERVER = """
import socket, sys
port, udp = int(sys.argv[1]), sys.argv[2] == "udp"
def seen(addr):
    return addr[7:] if addr.startswith("::ffff:") else addr
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", port))
if not udp:
    s.listen(64)
print("whoami listening on", port, "udp" if udp else "tcp", flush=True)
while True:
    if udp:
        data, peer = s.recvfrom(2048)
        s.sendto(seen(peer[0]).encode(), peer)
    else:
        conn, peer = s.accept()
        try:
            conn.sendall(seen(peer[0]).encode())
        except OSError:
            pass
        conn.close()
"""

_CLIENT = """
import socket, sys
addr, port, udp, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "udp", float(sys.argv[4])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
s.settimeout(timeout)
try:
    if udp:
        s.sendto(b"?", (addr, port))
    else:
        s.connect((addr, port))
    print(s.recv(2048).decode())
except OSError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


def whoami_server_argv(port: int = WHOAMI_PORT, *, udp: bool = False) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _SERVER, str(port), "udp" if udp else "tcp"]


def whoami(
    netns: str, addr: str, port: int = WHOAMI_PORT, *, udp: bool = False, timeout: float = 5.0
) -> str | None:
    """From inside ``netns``, ask the whoami server at addr:port which source address it sees; None if
    there is no answer within ``timeout``."""
    proto = "udp" if udp else "tcp"
    argv = [sys.executable, "-I", "-S", "-c", _CLIENT, addr, str(port), proto, str(timeout)]
    done = run(exec_argv(netns, argv), check=False, timeout=timeout + 5)
    return done.stdout.strip() if done.returncode == 0 else None
