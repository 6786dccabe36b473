"""The cross-platform WireGuard UAPI (the text protocol `wg` speaks to wireguard-go): encoding a
device transaction, parsing `get`, and talking to the socket. Keys are hex on this protocol."""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence

from meshroute.agent.wireguard.model import DeviceSettings, PeerOp, PeerStats


class UapiError(Exception):
    pass


def b64_to_hex(key: str) -> str:
    return base64.b64decode(key).hex()


def hex_to_b64(key: str) -> str:
    return base64.b64encode(bytes.fromhex(key)).decode()


def encode_set(settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> str:
    """One `set=1` transaction: the device applies all of it or reports an error."""
    lines = ["set=1"]
    if settings is not None:
        lines += [
            f"private_key={b64_to_hex(settings.private_key)}",
            f"listen_port={settings.listen_port}",
            f"fwmark={settings.fwmark}",
        ]
    for op in ops:
        key = b64_to_hex(op.public_key)
        lines.append(f"public_key={key}")
        if op.remove or op.recreate:
            lines.append("remove=true")
            if op.remove:
                continue
            lines.append(f"public_key={key}")
        if op.endpoint is not None:
            lines.append(f"endpoint={op.endpoint}")
        if op.allowed_ips is not None:
            lines.append("replace_allowed_ips=true")
            lines += [f"allowed_ip={cidr}" for cidr in op.allowed_ips]
        lines += [f"allowed_ip={cidr}" for cidr in op.add_allowed_ips]
    return "\n".join(lines) + "\n\n"


def parse_get(text: str) -> tuple[dict[str, str], list[PeerStats]]:
    """Device fields and the peers of a `get=1` answer."""
    device: dict[str, str] = {}
    peers: list[PeerStats] = []
    current: dict[str, str] | None = None
    allowed: list[str] = []

    def flush() -> None:
        if current is None:
            return
        sec = int(current.get("last_handshake_time_sec", "0"))
        nsec = int(current.get("last_handshake_time_nsec", "0"))
        endpoint = current.get("endpoint") or None
        peers.append(
            PeerStats(
                public_key=hex_to_b64(current["public_key"]),
                endpoint=endpoint,
                last_handshake=sec + nsec / 1e9 if sec else None,
                rx_bytes=int(current.get("rx_bytes", "0")),
                tx_bytes=int(current.get("tx_bytes", "0")),
                allowed_ips=tuple(sorted(allowed)),
            )
        )

    for line in text.splitlines():
        if not line:
            continue
        key, _, value = line.partition("=")
        if key == "errno":
            if value != "0":
                raise UapiError(f"wireguard-go answered errno={value}")
            continue
        if key == "public_key":
            flush()
            current, allowed = {"public_key": value}, []
        elif current is None:
            device[key] = value
        elif key == "allowed_ip":
            allowed.append(value)
        else:
            current[key] = value
    flush()
    return device, peers


def request(path: str, text: str, timeout: float = 5.0) -> str:
    """One request on a fresh connection (about 0.1 ms on a local socket)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(text.encode())
            chunks: list[bytes] = []
            tail = b""
            while not tail.endswith(b"\n\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                tail = (tail + chunk)[-2:]
        except OSError as exc:
            raise UapiError(f"WireGuard UAPI socket {path}: {exc}") from None
    return b"".join(chunks).decode()


def apply(path: str, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> None:
    answer = request(path, encode_set(settings, ops))
    if answer.strip() != "errno=0":
        raise UapiError(f"wireguard-go refused the change: {answer.strip() or 'no answer'}")


def get(path: str) -> tuple[dict[str, str], list[PeerStats]]:
    return parse_get(request(path, "get=1\n\n"))
