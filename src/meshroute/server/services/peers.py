"""Peers: listing, renaming, deleting, and registering a new peer from a setup key."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.agent_input import check_agent_meta, check_status_report
from meshroute.core.changes import GroupUpserted, PeerDeleted, PeerUpserted
from meshroute.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unauthorized,
)
from meshroute.core.ids import new_id
from meshroute.core.limits import check_length
from meshroute.core.model import Account, Peer, SetupKey
from meshroute.core.permissions import Op
from meshroute.core.routes import check_served_once
from meshroute.core.status import StatusReport
from meshroute.core.tokens import hash_secret
from meshroute.server.clock import utcnow
from meshroute.server.services.groups import ensure_all_group
from meshroute.server.services.uow import UnitOfWork, WriteTx

MODULE = "peers"
KEY_IN_USE = "this WireGuard public key is already in use: generate a new key pair"


@dataclass(slots=True)
class PeerUpdate:
    name: str
    ssh_enabled: bool = False
    login_expiration_enabled: bool = False
    inactivity_expiration_enabled: bool = False


@dataclass(slots=True)
class PeerRegistration:
    """What an agent tells the server when it joins with a setup key."""

    setup_key: str
    wg_public_key: str
    hostname: str
    os: str = ""
    kernel_version: str = ""
    version: str = ""
    endpoints: list[str] = field(default_factory=list)
    ipv6_capable: bool = False
    connection_ip: str = ""


@dataclass(slots=True)
class PeerMetaUpdate:
    """What an agent reports on every login."""

    hostname: str = ""
    os: str = ""
    kernel_version: str = ""
    version: str = ""
    endpoints: list[str] = field(default_factory=list)
    ipv6_capable: bool = False
    connection_ip: str = ""


def validate_wg_key(key: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument("invalid WireGuard public key: not base64") from exc
    if len(raw) != 32:
        raise InvalidArgument("invalid WireGuard public key: must be 32 bytes")


def dns_label(hostname: str, taken: set[str]) -> str:
    """A DNS-safe, unique label from a hostname (`My Laptop` -> `my-laptop`, then `my-laptop-1`)."""
    base = re.sub(r"[^a-z0-9-]+", "-", hostname.lower()).strip("-")[:55] or "peer"
    label, n = base, 0
    while label in taken:
        n += 1
        label = f"{base}-{n}"
    return label


def allocate_ips(account: Account, used: set[str]) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address]:
    """A random free address of the account's IPv4 network; IPv6 shares the host part, in the /64."""
    net = account.network_v4
    hosts = net.num_addresses - 2
    if len(used) >= hosts:
        raise PreconditionFailed("no free IP addresses left in the account's network")
    while True:
        ip = net.network_address + 1 + secrets.randbelow(hosts)
        if str(ip) not in used:
            break
    host = int(ip) - int(net.network_address)
    ipv6 = account.network_v6.network_address + host
    return ipaddress.IPv4Address(ip), ipaddress.IPv6Address(ipv6)


class PeerService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def update(self, account_id: str, user_id: str, peer_id: str, upd: PeerUpdate) -> Peer:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.UPDATE)
            peer = tx.peers.get(peer_id)
            if peer is None:
                raise NotFound(f"peer: {peer_id} not found")
            if not upd.name.strip():
                raise InvalidArgument("peer name shouldn't be empty")
            check_length(upd.name, "peer name")
            events: list[tuple[Activity, dict[str, object]]] = []
            if upd.name != peer.name:
                taken = tx.peers.used_dns_labels(account_id) - {peer.dns_label}
                events.append((Activity.PEER_RENAMED, {"name": upd.name, "old_name": peer.name}))
                peer.name, peer.dns_label = upd.name, dns_label(upd.name, taken)
            if upd.ssh_enabled != peer.ssh_enabled:
                on = upd.ssh_enabled
                events.append(
                    (Activity.PEER_SSH_ENABLED if on else Activity.PEER_SSH_DISABLED, {"name": peer.name})
                )
                peer.ssh_enabled = on
            if upd.login_expiration_enabled != peer.login_expiration_enabled:
                on = upd.login_expiration_enabled
                act = (
                    Activity.PEER_LOGIN_EXPIRATION_ENABLED if on else Activity.PEER_LOGIN_EXPIRATION_DISABLED
                )
                events.append((act, {"name": peer.name}))
                peer.login_expiration_enabled = on
            peer.inactivity_expiration_enabled = upd.inactivity_expiration_enabled
            tx.peers.update(peer)
            tx.record(PeerUpserted(peer))
            for activity, meta in events:
                tx.events.add(account_id, activity, user_id, peer.id, meta)
            return peer

    def delete(self, account_id: str, user_id: str, peer_id: str) -> None:
        """Refused while a route names the peer as its routing peer: its routes would silently die."""
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.DELETE)
            peer = tx.peers.get(peer_id)
            if peer is None:
                raise NotFound(f"peer: {peer_id} not found")
            for route in tx.routes.all():
                if route.peer == peer_id:
                    raise PreconditionFailed(
                        f"peer is the routing peer of route {route.net_id} ({route.id}): "
                        "delete the route or give it another routing peer first"
                    )
            tx.peers.delete(peer_id)
            tx.record(PeerDeleted(peer_id))
            tx.events.add(
                account_id,
                Activity.PEER_REMOVED_BY_USER,
                user_id,
                peer_id,
                {
                    "name": peer.name,
                    "ip": str(peer.ip),
                    "fqdn": f"{peer.dns_label}.{tx.account.domain}",
                },
            )

    def register(self, reg: PeerRegistration) -> tuple[Peer, str]:
        """A new peer joins with a setup key; returns it and its credential (shown only now)."""
        validate_wg_key(reg.wg_public_key)
        check_agent_meta(
            hostname=reg.hostname,
            os=reg.os,
            kernel_version=reg.kernel_version,
            agent_version=reg.version,
            endpoints=reg.endpoints,
        )
        with self.uow.read() as rtx:
            key = rtx.setup_keys.by_hash(hash_secret(reg.setup_key))
        if key is None:
            raise PermissionDenied("invalid setup key")
        with self.uow.write(key.account_id) as tx:
            key = tx.setup_keys.get(key.id)  # re-read under the account lock: usage counts race otherwise
            now = utcnow()
            if key is None or key.state(now) != "valid":
                raise PermissionDenied("invalid setup key: " + (key.state(now) if key else "deleted"))
            # Keys are unique in the whole store, as in NetBird (agents log in by key and
            # credential). The answer is the same whichever account holds the key, and names
            # neither: it tells the caller only what it already knows, the key.
            if tx.peers.by_key(reg.wg_public_key) is not None:
                raise AlreadyExists(KEY_IN_USE)
            peer = _new_peer(tx, reg, key, now)
            credential = secrets.token_urlsafe(32)
            _join(tx, peer, key, credential)
            key.used_times += 1
            key.last_used = now
            tx.setup_keys.update(key)
            tx.record(PeerUpserted(peer))
            meta = {"name": peer.name, "ip": str(peer.ip), "fqdn": f"{peer.dns_label}.{tx.account.domain}"}
            tx.events.add(tx.account_id, Activity.PEER_ADDED_WITH_SETUP_KEY, key.id, peer.id, meta)
            return peer, credential

    def authenticate(self, peer_key: str, credential: str) -> Peer:
        """Proof of possession: a public key alone never identifies a peer."""
        with self.uow.read() as tx:
            peer = tx.peers.by_key(peer_key)
            stored = tx.peers.credential_hash(peer.id) if peer else None
        if peer is None or stored is None or not secrets.compare_digest(stored, hash_secret(credential)):
            raise Unauthorized("peer authentication failed")
        return peer

    def update_meta(self, peer: Peer, meta: PeerMetaUpdate) -> Peer:
        """Records what the agent reports; a change of anything others see moves the serial."""
        check_agent_meta(
            hostname=meta.hostname,
            os=meta.os,
            kernel_version=meta.kernel_version,
            agent_version=meta.version,
            endpoints=meta.endpoints,
        )
        with self.uow.write(peer.account_id) as tx:
            current = tx.peers.get(peer.id)
            if current is None:
                raise NotFound(f"peer: {peer.id} not found")
            before = (
                current.hostname,
                current.os,
                current.kernel_version,
                current.version,
                current.endpoints,
                current.ipv6_capable,
                current.connection_ip,
            )
            current.hostname = meta.hostname or current.hostname
            current.os, current.kernel_version, current.version = meta.os, meta.kernel_version, meta.version
            current.endpoints, current.ipv6_capable = list(meta.endpoints), meta.ipv6_capable
            current.connection_ip = meta.connection_ip or current.connection_ip
            current.last_login = utcnow()
            after = (
                current.hostname,
                current.os,
                current.kernel_version,
                current.version,
                current.endpoints,
                current.ipv6_capable,
                current.connection_ip,
            )
            tx.peers.update(current)
            if after != before:
                tx.record(PeerUpserted(current))
            return current

    def set_connected(self, peer_id: str, when: datetime) -> None:
        """Connection status is not a user change: no serial, no event."""
        with self.uow.write_unlocked() as tx:
            tx.peers.set_status(peer_id, True, when)

    def set_disconnected(self, peer_id: str, connected_at: datetime, when: datetime) -> None:
        """Only the stream that connected the peer last may mark it disconnected: an agent that
        moved to another stream or replica in the meantime stays connected."""
        with self.uow.write_unlocked() as tx:
            tx.peers.set_status(peer_id, False, when, if_last_seen=connected_at)

    def report_status(self, peer: Peer, report: StatusReport) -> None:
        """What the peer's agent does with its routes now: replaces its last report. Like the
        connection status, not a user change: no lock, no serial, no event, no map change."""
        check_status_report(report)
        with self.uow.write_unlocked() as tx:
            tx.status_reports.save(peer.id, report, utcnow())

    def reset_connections(self) -> None:
        """At start of a server that is the store's only one (SQLite): nobody is connected yet."""
        with self.uow.write_unlocked() as tx:
            tx.peers.reset_connections()


def _new_peer(tx: WriteTx, reg: PeerRegistration, key: SetupKey, now: datetime) -> Peer:
    """The joining peer: free addresses and a unique DNS label in the account."""
    account = tx.account
    ip, ipv6 = allocate_ips(account, tx.peers.used_ips(account.id))
    hostname = reg.hostname.strip() or "peer"
    return Peer(
        id=new_id(),
        account_id=account.id,
        key=reg.wg_public_key,
        ip=ip,
        ipv6=ipv6,
        name=hostname,
        hostname=hostname,
        dns_label=dns_label(hostname, tx.peers.used_dns_labels(account.id)),
        created_at=now,
        os=reg.os,
        kernel_version=reg.kernel_version,
        version=reg.version,
        connection_ip=reg.connection_ip,
        last_login=now,
        setup_key_id=key.id,
        ephemeral=key.ephemeral,
        ipv6_capable=reg.ipv6_capable,
        endpoints=list(reg.endpoints),
    )


def _join(tx: WriteTx, peer: Peer, key: SetupKey, credential: str) -> None:
    """Store the peer and make it a member of All and of the key's auto groups (the groups
    first, then the peer, in the change set)."""
    all_group = ensure_all_group(tx, peer.account_id)
    member_of = [all_group.id, *(g for g in key.auto_groups if g != all_group.id)]
    # The duplicate rule holds for the groups the peer joins (a key's auto-groups may be the
    # peer groups of two routes for the same destination).
    if tx.routes.served_twice(member_of):
        check_served_once(
            tx.routes.served_by(member_of),
            {peer.id: member_of},
            f"failed to add peer {peer.name}",
            lambda _pid: peer.name,
        )
    tx.peers.add(peer, credential_hash=hash_secret(credential))
    for gid in member_of:
        group = tx.groups.get(gid)
        if group is not None:
            tx.groups.add_member(group, peer.id)
            group.peers.append(peer.id)
            tx.record(GroupUpserted(group))
