"""Kernel WireGuard over netlink (pyroute2): the interface is an rtnetlink link of kind
`wireguard`, configured over the `wireguard` generic-netlink family."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.wireguard import (
    WG_CMD_SET_DEVICE,
    WG_GENL_VERSION,
    WGPEER_F_REMOVE_ME,
    WGPEER_F_REPLACE_ALLOWEDIPS,
    AsyncWireGuard,
    wgmsg,
)

from meshroute.agent.wireguard.backend import BackendUnavailable
from meshroute.agent.wireguard.model import DeviceSettings, PeerOp, PeerStats


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


# Peers per WG_CMD_SET_DEVICE message: well under the size the kernel takes in one message
# (wg(8) fills a page per message; a peer with a few AllowedIPs takes about 100 bytes).
PEERS_PER_MESSAGE = 32


def _allowed_ip(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr, strict=False)
    family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
    return {
        "attrs": [
            ["WGALLOWEDIP_A_FAMILY", family],
            ["WGALLOWEDIP_A_IPADDR", net.network_address.packed],
            ["WGALLOWEDIP_A_CIDR_MASK", net.prefixlen],
        ]
    }


def _peer_attrs(op: PeerOp, *, remove: bool = False) -> dict[str, Any]:
    """One peer of a WG_CMD_SET_DEVICE message (the layout of include/uapi/linux/wireguard.h)."""
    attrs: list[list[Any]] = [["WGPEER_A_PUBLIC_KEY", op.public_key]]
    if remove:
        attrs.append(["WGPEER_A_FLAGS", WGPEER_F_REMOVE_ME])
        return {"attrs": attrs}
    if op.endpoint is not None:
        host, port = _split_endpoint(op.endpoint)
        attrs.append(["WGPEER_A_ENDPOINT", {"addr": host, "port": port}])
    attrs.append(["WGPEER_A_FLAGS", WGPEER_F_REPLACE_ALLOWEDIPS if op.allowed_ips is not None else 0])
    listed = [*(op.allowed_ips or ()), *op.add_allowed_ips]
    if op.allowed_ips is not None or listed:
        attrs.append(["WGPEER_A_ALLOWEDIPS", [_allowed_ip(c) for c in listed]])
    return {"attrs": attrs}


def set_messages(interface: str, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> list[Any]:
    """The device change as few messages as the kernel takes: settings and up to
    PEERS_PER_MESSAGE peers each (a recreate is a removal, then the peer anew, in order)."""
    peers: list[dict[str, Any]] = []
    for op in ops:
        if op.remove or op.recreate:
            peers.append(_peer_attrs(op, remove=True))
        if not op.remove:
            peers.append(_peer_attrs(op))
    messages = []
    for start in range(0, max(len(peers), 1), PEERS_PER_MESSAGE):
        msg = wgmsg()
        msg["cmd"] = WG_CMD_SET_DEVICE
        msg["version"] = WG_GENL_VERSION
        msg["attrs"].append(["WGDEVICE_A_IFNAME", interface])
        if settings is not None and start == 0:
            msg["attrs"].append(["WGDEVICE_A_PRIVATE_KEY", settings.private_key])
            msg["attrs"].append(["WGDEVICE_A_LISTEN_PORT", settings.listen_port])
            msg["attrs"].append(["WGDEVICE_A_FWMARK", settings.fwmark])
        chunk = peers[start : start + PEERS_PER_MESSAGE]
        if chunk:
            msg["attrs"].append(["WGDEVICE_A_PEERS", chunk])
        messages.append(msg)
    return messages


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stats(peer: Any) -> PeerStats:
    endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
    handshake = peer.get_attr("WGPEER_A_LAST_HANDSHAKE_TIME")
    ips = peer.get_attr("WGPEER_A_ALLOWEDIPS") or []
    ep = None
    if endpoint is not None and endpoint.get("port"):
        addr = endpoint["addr"]
        ep = f"[{addr}]:{endpoint['port']}" if ":" in addr else f"{addr}:{endpoint['port']}"
    seconds = handshake["tv_sec"] + handshake["tv_nsec"] / 1e9 if handshake and handshake["tv_sec"] else None
    return PeerStats(
        public_key=_text(peer.get_attr("WGPEER_A_PUBLIC_KEY")),
        endpoint=ep,
        last_handshake=seconds,
        rx_bytes=int(peer.get_attr("WGPEER_A_RX_BYTES") or 0),
        tx_bytes=int(peer.get_attr("WGPEER_A_TX_BYTES") or 0),
        allowed_ips=tuple(sorted(ip["addr"] for ip in ips if ip.get("addr"))),
    )


@contextlib.asynccontextmanager
async def _wireguard() -> AsyncIterator[Any]:
    wg = AsyncWireGuard()
    try:
        await wg.setup_endpoint()
        yield wg
    finally:
        wg.close()


class KernelDevice:
    kind = "kernel"

    def __init__(self, interface: str) -> None:
        self.interface = interface

    @classmethod
    async def create(cls, interface: str) -> KernelDevice:
        async with AsyncIPRoute() as ipr:
            try:
                await ipr.link("add", ifname=interface, kind="wireguard")
            except NetlinkError as exc:
                if exc.code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EAFNOSUPPORT):
                    raise BackendUnavailable("the kernel has no WireGuard module") from None
                raise BackendUnavailable(f"cannot create WireGuard interface {interface}: {exc}") from None
        return cls(interface)

    async def configure(self, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> None:
        if settings is None and not ops:
            return
        async with _wireguard() as wg:
            for msg in set_messages(self.interface, settings, ops):
                await wg._do_request(msg, msg_flags=NLM_F_REQUEST | NLM_F_ACK)

    async def peers(self) -> list[PeerStats]:
        async with _wireguard() as wg:
            messages = [msg async for msg in await wg.info(self.interface)]
        return [_stats(p) for msg in messages for p in (msg.get_attr("WGDEVICE_A_PEERS") or [])]

    async def close(self) -> None:
        async with AsyncIPRoute() as ipr:
            try:
                await ipr.link("del", ifname=self.interface)
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise

    def owner_record(self) -> dict[str, object]:
        return {}
