"""What `meshroute agent status` shows: the management link, the interface, and every peer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from meshroute.agent.endpoints import Path
from meshroute.agent.health import ProbeTrack
from meshroute.agent.wireguard.model import REJECT_AFTER_TIME_S, PeerStats

if TYPE_CHECKING:
    from meshroute.agent.engine import Agent

CONNECTED, CONNECTING, IDLE = "connected", "connecting", "idle"


def peer_state(stats: PeerStats | None, track: ProbeTrack | None, path: Path | None, now: float) -> str:
    """Probed peers: by their answers. Others: a live WireGuard session is connected; a peer we
    reached before but exchange nothing with is idle (the next packet handshakes again)."""
    if track is not None and track.up is not None:
        return CONNECTED if track.up else CONNECTING
    handshake = stats.last_handshake if stats is not None else None
    if handshake is not None and now - handshake < REJECT_AFTER_TIME_S:
        return CONNECTED
    if path is not None and path.confirmed:
        return IDLE
    return CONNECTING


def build(agent: Agent) -> dict[str, Any]:
    now = time.time()
    link, identity = agent.link.status, agent.link.identity
    m = agent.map
    peers = []
    for p in m.peers if m is not None else ():
        if p.key == m.self_config.key:  # type: ignore[union-attr]
            continue
        st = agent.stats.get(p.key)
        track = agent.tracker.tracks.get(p.key)
        path = agent.selector.paths.get(p.key)
        peers.append(
            {
                "id": p.id,
                "name": p.name,
                "public_key": p.key,
                "ip": p.ip,
                "ipv6": p.ipv6,
                "endpoint": (st.endpoint if st and st.endpoint else None)
                or (path.endpoint if path else None),
                "candidates": list(path.candidates) if path else [],
                "state": peer_state(st, track, path, now),
                "last_handshake": st.last_handshake if st else None,
                "latency_ms": round(track.rtt_ms, 3) if track and track.rtt_ms is not None else None,
                "probed": track is not None,
                "rx_bytes": st.rx_bytes if st else 0,
                "tx_bytes": st.tx_bytes if st else 0,
            }
        )
    device = agent.device
    return {
        "management": {
            "server": agent.cfg.server,
            "state": link.state.value,
            "serial": link.serial,
            "connected_since": link.connected_since,
            "last_error": link.last_error,
            "reconnects": link.reconnects,
            "peer_id": identity.peer_id if identity else "",
        },
        "interface": {
            "name": agent.cfg.interface,
            "backend": device.kind if device else None,
            "up": device is not None,
            "public_key": identity.wg_public_key if identity else "",
            "addresses": sorted(agent.addresses.owned) if agent.addresses else [],
            "listen_port": agent.cfg.listen_port,
            "mtu": agent.cfg.mtu,
        },
        "endpoints": agent.own_endpoints,
        "routing_peer": {
            "serves": [
                {"route_id": r.route_id, "network": r.network, "masquerade": r.masquerade}
                for r in agent.served.routes
            ],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in agent.served.checks],
            # domain routes served: route ID -> resolved name -> addresses in its nftables set
            "domains": agent.served.domain_status(),
        },
        "dns_interceptor": [f"{h}:{p}" for h, p in agent.domains.interceptor.bound]
        if agent.domains.interceptor
        else [],
        "routes": [
            {"network_id": g.net_id, "network": g.network, "installed": g.installed, "chosen": g.chosen}
            for g in agent.routes.plan.groups
        ],
        "probe": {
            "interval_ms": round(agent.cfg.probe_interval * 1000),
            "down_after": agent.tracker.down_after,
        },
        "peers": peers,
        "started": agent.started,
    }
