"""Domain objects to rows and back, one mapper per aggregate: a field is mapped once.

A mapper takes every field of the dataclass that is a column of the table, as it is, except the
few whose stored form differs (addresses and networks as text, enums as their values, lists
copied so that the object never shares the row's list, a status report as JSON text).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Row, Table

from meshroute.core.model import (
    Account,
    Group,
    NetworkType,
    Peer,
    PersonalAccessToken,
    Role,
    Route,
    SetupKey,
    User,
    WebSession,
)
from meshroute.core.route_status import PeerStatus
from meshroute.core.status import RequirementCheck, RouteState, RouteUse, StatusReport
from meshroute.server.store import tables as t

T = TypeVar("T")
Convert = Callable[[Any], Any]


class Mapper(Generic[T]):
    def __init__(
        self,
        cls: type[T],
        table: Table,
        load: dict[str, Convert] | None = None,
        dump: dict[str, Convert] | None = None,
    ) -> None:
        self.cls = cls
        self.fields = [f.name for f in dataclasses.fields(cls) if f.name in table.c]  # type: ignore[arg-type]
        converters = load or {}
        # (name, converter or None), precomputed: loading is on the path of every full account load.
        self._load = [(f, converters.get(f)) for f in self.fields]
        self._dump = dump or {}

    def load(self, row: Row[Any]) -> T:
        m = row._mapping
        return self.cls(**{f: m[f] if c is None else c(m[f]) for f, c in self._load})

    def dump(self, obj: T, exclude: Collection[str] = ()) -> dict[str, Any]:
        out = {}
        for f in self.fields:
            if f not in exclude:
                value = getattr(obj, f)
                convert = self._dump.get(f)
                out[f] = value if convert is None else convert(value)
        return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _ipv4(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(socket.inet_aton(text))  # 4x faster than parsing; stored canonical


def _ipv6(text: str | None) -> ipaddress.IPv6Address | None:
    return ipaddress.IPv6Address(text) if text else None


def _network(text: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    return ipaddress.ip_network(text) if text else None


_LISTS = ("auto_groups", "endpoints", "domains", "peer_groups", "groups", "access_control_groups")
_COPY: dict[str, Convert] = dict.fromkeys(_LISTS, list)

ACCOUNTS = Mapper(
    Account,
    t.accounts,
    load={"network_v4": ipaddress.IPv4Network, "network_v6": ipaddress.IPv6Network},
    dump={"network_v4": str, "network_v6": str},
)
USERS = Mapper(User, t.users, load={"role": Role, **_COPY}, dump={"role": lambda r: r.value, **_COPY})
TOKENS = Mapper(PersonalAccessToken, t.personal_access_tokens)
WEB_SESSIONS = Mapper(WebSession, t.web_sessions)
PEERS = Mapper(
    Peer, t.peers, load={"ip": _ipv4, "ipv6": _ipv6, **_COPY}, dump={"ip": str, "ipv6": _text, **_COPY}
)
GROUPS = Mapper(Group, t.groups)  # members (`peers`) live in group_peers
SETUP_KEYS = Mapper(SetupKey, t.setup_keys, load=_COPY, dump=_COPY)
ROUTES = Mapper(
    Route,
    t.routes,
    load={"network": _network, "network_type": NetworkType, **_COPY},
    dump={"network": _text, "network_type": int, **_COPY},
)


def report_json(report: StatusReport) -> str:
    """A status report as stored: compact JSON, in the order the agent sent it (equal reports are
    equal texts, so an unchanged report is recognised by comparing them)."""
    return orjson.dumps(
        {
            "routes": [
                {
                    "ha_id": u.ha_id,
                    "route_ids": list(u.route_ids),
                    "routing_peer_id": u.routing_peer_id,
                    "state": u.state.value,
                    **({"learned": u.learned} if u.learned else {}),
                }
                for u in report.routes
            ],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        }
    ).decode()


def report_from_json(text: str) -> StatusReport:
    data = orjson.loads(text)
    return StatusReport(
        routes=tuple(
            RouteUse(
                u["ha_id"],
                tuple(u["route_ids"]),
                u["routing_peer_id"],
                RouteState(u["state"]),
                int(u.get("learned", 0)),
            )
            for u in data["routes"]
        ),
        checks=tuple(RequirementCheck(c["name"], c["ok"], c["detail"]) for c in data["checks"]),
    )


STATUS_REPORTS = Mapper(
    PeerStatus, t.status_reports, load={"report": report_from_json}, dump={"report": report_json}
)
