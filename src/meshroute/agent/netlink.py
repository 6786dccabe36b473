"""Links and addresses over rtnetlink (pyroute2): the agent's only door to them. Errors that mean
"already done" (an address that exists, a link that is gone) are treated as done."""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

IFA_F_NODAD = 0x02  # an overlay address needs no duplicate detection (and must work at once)


class NetlinkFailure(Exception):
    pass


@dataclass(frozen=True, slots=True, order=True)
class LocalAddress:
    interface: str
    address: str
    prefixlen: int

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.address}/{self.prefixlen}", strict=False)


class NetlinkOps(Protocol):
    """What the agent needs of rtnetlink (the real `Netlink`, or a fake in unit tests)."""

    async def link_exists(self, name: str) -> bool: ...

    async def delete_link(self, name: str) -> bool: ...

    async def set_up(self, name: str, mtu: int) -> None: ...

    async def add_address(self, name: str, cidr: str) -> None: ...

    async def remove_address(self, name: str, cidr: str) -> None: ...

    async def local_addresses(self) -> list[LocalAddress]: ...


class Netlink:
    """Opened inside the agent's event loop (pyroute2's async API)."""

    def __init__(self) -> None:
        self._ipr: Any = None

    async def open(self) -> None:
        self._ipr = AsyncIPRoute()
        await self._ipr.setup_endpoint()

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def _index(self, name: str) -> int | None:
        found = await self._ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    async def link_exists(self, name: str) -> bool:
        return await self._index(name) is not None

    async def delete_link(self, name: str) -> bool:
        try:
            await self._ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise NetlinkFailure(f"cannot delete {name}: {exc}") from None
        return True

    async def set_up(self, name: str, mtu: int) -> None:
        index = await self._require(name)
        try:
            await self._ipr.link("set", index=index, mtu=mtu, state="up")
        except NetlinkError as exc:
            raise NetlinkFailure(f"cannot bring {name} up with MTU {mtu}: {exc}") from None

    async def _require(self, name: str) -> int:
        index = await self._index(name)
        if index is None:
            raise NetlinkFailure(f"no interface {name}")
        return index

    async def addresses(self, name: str) -> set[str]:
        index = await self._require(name)
        return {
            f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"
            async for msg in await self._ipr.get_addr(index=index)
        }

    async def add_address(self, name: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        flags = IFA_F_NODAD if iface.version == 6 else 0
        try:
            await self._ipr.addr(
                "add",
                index=await self._require(name),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                flags=flags,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise NetlinkFailure(f"cannot add {cidr} to {name}: {exc}") from None

    async def remove_address(self, name: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        try:
            await self._ipr.addr(
                "del",
                index=await self._require(name),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise NetlinkFailure(f"cannot remove {cidr} from {name}: {exc}") from None

    async def local_addresses(self) -> list[LocalAddress]:
        """Every address of every interface that is up (the caller filters)."""
        names = {
            msg["index"]: msg.get_attr("IFLA_IFNAME")
            async for msg in await self._ipr.get_links()
            if msg["flags"] & 1  # IFF_UP
        }
        out = []
        async for msg in await self._ipr.get_addr():
            name = names.get(msg["index"])
            address = msg.get_attr("IFA_ADDRESS")
            if name and address:
                out.append(LocalAddress(name, address, msg["prefixlen"]))
        return sorted(out)


def ipv6_enabled() -> bool:
    """The host can use IPv6 on a new interface (the overlay's IPv6 then works here)."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0"
    except OSError:
        return False
