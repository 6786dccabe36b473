"""Route rules: network parsing, validation and duplicate prevention (reference §1-§2)."""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from meshroute.core.domains import punycode_string, safe_string
from meshroute.core.errors import AlreadyExists, InvalidArgument
from meshroute.core.limits import MAX_GROUP_IDS, check_count
from meshroute.core.model import (
    DOMAIN_PLACEHOLDER,
    MAX_METRIC,
    MAX_NET_ID_CHARS,
    MIN_METRIC,
    Group,
    IPNetwork,
    NetworkType,
    Peer,
    Route,
)

_PREFIX_RE = re.compile(r"^[0-9A-Fa-f:.]+/(?:0|[1-9][0-9]{0,2})$")  # no leading zeros, as Go


def parse_network(text: str) -> tuple[NetworkType, IPNetwork]:
    """A CIDR string to (type, masked prefix); `10.0.0.1/24` becomes `10.0.0.0/24`."""
    if not _PREFIX_RE.match(text):
        raise InvalidArgument(f"invalid network {text}")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"invalid network {text}") from exc
    kind = NetworkType.IPV6 if isinstance(net, ipaddress.IPv6Network) else NetworkType.IPV4
    return kind, net


def check_request_shape(*, network: bool, domains: bool, peer: bool, peer_groups: bool, net_id: str) -> None:
    """The REST handler's own checks, run before permissions and before the service (§4.4)."""
    if network and domains:
        raise InvalidArgument("only one of 'network' or 'domains' should be provided")
    if not network and not domains:
        raise InvalidArgument("either 'network' or 'domains' should be provided")
    if not peer and not peer_groups:
        raise InvalidArgument("either 'peer' or 'peer_groups' should be provided")
    if peer and peer_groups:
        raise InvalidArgument("only one of 'peer' or 'peer_groups' should be provided")
    if not net_id or len(net_id) > MAX_NET_ID_CHARS:
        raise InvalidArgument(f"identifier should be between 1 and {MAX_NET_ID_CHARS} characters")


class RouteContext(Protocol):
    """What validation needs to know about the account; the store implements it."""

    def groups_by_id(self, ids: Iterable[str]) -> dict[str, Group]: ...

    def peer(self, peer_id: str) -> Peer | None: ...

    def routes(self) -> Iterable[Route]: ...


def validate_route(route: Route | None, ctx: RouteContext) -> Route:
    """Every manager-side check in the reference's order; sets the domain placeholder."""
    if route is None:
        raise InvalidArgument("route provided is nil")
    for ids, what in (
        (route.groups, "groups"),
        (route.peer_groups, "peer_groups"),
        (route.access_control_groups, "access_control_groups"),
    ):
        check_count(ids, what, MAX_GROUP_IDS)
    if not MIN_METRIC <= route.metric <= MAX_METRIC:
        raise InvalidArgument(f"metric should be between {MIN_METRIC} and {MAX_METRIC}")
    if not route.net_id or len(route.net_id) > MAX_NET_ID_CHARS:
        raise InvalidArgument(f"identifier should be between 1 and {MAX_NET_ID_CHARS}")
    if route.domains and route.network is not None:
        raise InvalidArgument("domains and network should not be provided at the same time")
    if not route.domains and route.network is None:
        raise InvalidArgument("invalid Prefix")
    if route.domains:
        route.network = DOMAIN_PLACEHOLDER
    if route.peer and route.peer_groups:
        raise InvalidArgument("peer with ID and peer groups should not be provided at the same time")
    groups = ctx.groups_by_id([*route.groups, *route.peer_groups, *route.access_control_groups])
    if route.peer_groups:
        _validate_group_list(route.peer_groups, groups)
    if route.access_control_groups:
        _validate_group_list(route.access_control_groups, groups)
    _validate_group_list(route.groups, groups)
    check_duplicates(route, ctx)
    return route


def _validate_group_list(ids: Sequence[str], known: dict[str, Group]) -> None:
    if not ids:
        raise InvalidArgument("the list of group IDs should not be empty")
    for gid in ids:
        if gid == "":
            raise InvalidArgument("group ID should not be empty string")
        if gid not in known:
            raise InvalidArgument(f"group id {gid} not found")


def same_destination(a: Route, b: Route) -> bool:
    """Same prefix, or the same ordered domain list (what a peer may serve only once)."""
    if b.is_dynamic:
        return bool(a.domains) and punycode_string(a.domains) == punycode_string(b.domains)
    return not a.domains and str(a.network) == str(b.network)


def check_duplicates(route: Route, ctx: RouteContext) -> None:
    """No peer may serve the same destination twice, directly or through a peer group.

    Unlike the reference (QUIRK §2.6) an existing *single-peer* route blocks its peer too.
    """
    descriptor = f"domains [{safe_string(route.domains)}]" if route.domains else f"prefix {route.network}"
    prefix = f"failed to add route with {descriptor}"
    candidates = [r for r in ctx.routes() if r.id != route.id and same_destination(route, r)]
    seen_peers: set[str] = set()
    seen_groups: set[str] = set()
    candidate_groups = ctx.groups_by_id(g for c in candidates for g in c.peer_groups)
    for cand in candidates:
        if cand.peer:
            seen_peers.add(cand.peer)
        for gid in cand.peer_groups:
            seen_groups.add(gid)
            group = candidate_groups.get(gid)
            if group is None:
                raise InvalidArgument(f"{prefix} - peer group {gid} doesn't exist")
            seen_peers.update(group.peers)
    if route.peer:
        if ctx.peer(route.peer) is None:
            raise InvalidArgument(f"peer with ID {route.peer} not found")
        if route.peer in seen_peers:
            raise AlreadyExists(f"{prefix} - peer {route.peer} already has this route")
    if not route.peer_groups:
        return
    own_groups = ctx.groups_by_id(route.peer_groups)
    for gid in route.peer_groups:
        group = own_groups[gid]
        if gid in seen_groups:
            raise AlreadyExists(f"{prefix} - peer group {group.name} already has this route")
        for pid in group.peers:
            if pid in seen_peers:
                peer = ctx.peer(pid)
                if peer is None:
                    raise InvalidArgument(f"peer with ID {pid} not found")
                raise AlreadyExists(
                    f"{prefix} - peer {peer.name} from the group {group.name} already has this route"
                )


def destination(route: Route) -> tuple[str, str] | None:
    """What a peer may serve only once, as a key: equal keys <=> `same_destination`."""
    if route.is_dynamic:
        return ("domains", punycode_string(route.domains)) if route.domains else None
    return ("prefix", str(route.network)) if route.network is not None else None


def check_served_once(
    routes: Iterable[Route],
    groups_of: Mapping[str, Collection[str]],
    context: str,
    peer_name: Callable[[str], str],
) -> None:
    """The duplicate rule after a change of group membership (a group update, a peer joining
    with a setup key's auto-groups): every peer of `groups_of` (peer ID -> all the groups it is
    in after the change) serves each destination through at most one route.

    `check_duplicates` guards route saves; without this, a route's peer group could gain a member
    that already serves the destination through another route, which the route save refused.
    """
    ordered = list(routes)  # the order in which the message names two routes
    direct: dict[str, list[int]] = {}
    via_group: dict[str, list[int]] = {}
    for i, r in enumerate(ordered):
        if r.peer:
            direct.setdefault(r.peer, []).append(i)
        for gid in dict.fromkeys(r.peer_groups):
            via_group.setdefault(gid, []).append(i)
    for pid, groups in groups_of.items():
        served: dict[tuple[str, str], Route] = {}
        found = itertools.chain(direct.get(pid, ()), *(via_group.get(g, ()) for g in groups))
        for r in (ordered[i] for i in sorted(set(found))):
            key = destination(r)
            if key is None:
                continue
            first = served.setdefault(key, r)
            if first.id != r.id:
                what = f"domains [{safe_string(r.domains)}]" if r.domains else f"prefix {r.network}"
                raise AlreadyExists(
                    f"{context} - peer {peer_name(pid)} would serve {what} twice: "
                    f"through route {first.net_id} ({first.id}) and route {r.net_id} ({r.id})"
                )


def event_meta(route: Route) -> dict[str, Any]:
    """Activity-log metadata of a route event (reference §1.4 EventMeta)."""
    return {
        "name": route.net_id,
        "network_range": str(route.network) if route.network is not None else "invalid Prefix",
        "domains": safe_string(route.domains),
        "peer_id": route.peer,
        "peer_groups": list(route.peer_groups),
    }
