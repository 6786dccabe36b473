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
from meshroute.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from meshroute.core.ids import new_id
from meshroute.core.limits import check_length
from meshroute.core.model import Account, Peer
from meshroute.core.permissions import Op
from meshroute.core.tokens import hash_secret
from meshroute.server.services.groups import ensure_all_group
from meshroute.server.services.uow import UnitOfWork, WriteTx
from meshroute.server.store.repo import Tx, utcnow

MODULE = "peers"


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

    def list_all(self, account_id: str, user_id: str) -> tuple[list[Peer], dict[str, list[tuple[str, str]]]]:
        """Peers and, for each, its groups as (id, name) pairs.

        A user without peers:read sees only their own peers (NetBird); peers here join with
        setup keys, so that is none. Blocked users and other accounts are refused as usual.
        """
        with self.uow.read(account_id) as tx:
            user = tx.user(user_id)
            visible = user is not None and not user.blocked and user.account_id == account_id
            if visible and user is not None and not permissions.allowed(user, MODULE, Op.READ):
                own = [p for p in tx.peers(account_id) if p.user_id == user.id]
                return own, _peer_groups(tx, account_id)
            permissions.require(user, account_id, MODULE, Op.READ)
            return tx.peers(account_id), _peer_groups(tx, account_id)

    def get(self, account_id: str, user_id: str, peer_id: str) -> tuple[Peer, list[tuple[str, str]]]:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.READ)
            peer = tx.peer(peer_id)
            if peer is None:
                raise NotFound(f"peer: {peer_id} not found")
            return peer, _peer_groups(tx, account_id).get(peer_id, [])

    def update(self, account_id: str, user_id: str, peer_id: str, upd: PeerUpdate) -> Peer:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.UPDATE)
            peer = tx.peer(peer_id)
            if peer is None:
                raise NotFound(f"peer: {peer_id} not found")
            if not upd.name.strip():
                raise InvalidArgument("peer name shouldn't be empty")
            check_length(upd.name, "peer name")
            events: list[tuple[Activity, dict[str, object]]] = []
            if upd.name != peer.name:
                taken = tx.used_dns_labels(account_id) - {peer.dns_label}
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
            tx.update_peer(peer)
            tx.changed("peer", peer.id)
            for activity, meta in events:
                tx.add_event(account_id, activity, user_id, peer.id, meta)
            return peer

    def delete(self, account_id: str, user_id: str, peer_id: str) -> None:
        """Refused while a route names the peer as its routing peer: its routes would silently die."""
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.DELETE)
            peer = tx.peer(peer_id)
            if peer is None:
                raise NotFound(f"peer: {peer_id} not found")
            for route in tx.routes():
                if route.peer == peer_id:
                    raise PreconditionFailed(
                        f"peer is the routing peer of route {route.net_id} ({route.id}): "
                        "delete the route or give it another routing peer first"
                    )
            tx.delete_peer(peer_id)
            tx.changed("peer", peer_id, deleted=True)
            tx.add_event(
                account_id,
                Activity.PEER_REMOVED_BY_USER,
                user_id,
                peer_id,
                {
                    "name": peer.name,
                    "ip": str(peer.ip),
                    "fqdn": f"{peer.dns_label}.{_domain(tx, account_id)}",
                },
            )

    def register(self, reg: PeerRegistration) -> tuple[Peer, str]:
        """A new peer joins with a setup key; returns it and its credential (shown only now)."""
        validate_wg_key(reg.wg_public_key)
        check_length(reg.hostname, "hostname")
        check_length(reg.os, "os")
        check_length(reg.kernel_version, "kernel version")
        check_length(reg.version, "agent version", 64)
        with self.uow.read() as rtx:
            key = rtx.setup_key_by_hash(hash_secret(reg.setup_key))
        if key is None:
            raise PermissionDenied("invalid setup key")
        with self.uow.write(key.account_id) as tx:
            key = tx.setup_key(key.id)  # re-read under the account lock: usage counts race otherwise
            now = utcnow()
            if key is None or key.state(now) != "valid":
                raise PermissionDenied("invalid setup key: " + (key.state(now) if key else "deleted"))
            if tx.peer_by_key(reg.wg_public_key) is not None:
                raise AlreadyExists("peer has been already registered")
            account = tx.account_obj
            ip, ipv6 = allocate_ips(account, tx.used_ips(account.id))
            hostname = reg.hostname.strip() or "peer"
            peer = Peer(
                id=new_id(),
                account_id=account.id,
                key=reg.wg_public_key,
                ip=ip,
                ipv6=ipv6,
                name=hostname,
                hostname=hostname,
                dns_label=dns_label(hostname, tx.used_dns_labels(account.id)),
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
            credential = secrets.token_urlsafe(32)
            tx.insert_peer(peer, credential_hash=hash_secret(credential))
            all_group = ensure_all_group(tx, account.id)
            member_of = [all_group.id, *(g for g in key.auto_groups if g != all_group.id)]
            for gid in member_of:
                group = tx.group(gid)
                if group is not None:
                    tx.add_group_member(group, peer.id)
                    tx.changed("group", gid)
            key.used_times += 1
            key.last_used = now
            tx.update_setup_key(key)
            tx.changed("peer", peer.id)
            meta = {"name": peer.name, "ip": str(peer.ip), "fqdn": f"{peer.dns_label}.{account.domain}"}
            tx.add_event(account.id, Activity.PEER_ADDED_WITH_SETUP_KEY, key.id, peer.id, meta)
            return peer, credential

    def authenticate(self, peer_key: str, credential: str) -> Peer:
        """Proof of possession: a public key alone never identifies a peer."""
        with self.uow.read() as tx:
            peer = tx.peer_by_key(peer_key)
            stored = tx.peer_credential_hash(peer.id) if peer else None
        if peer is None or stored is None or not secrets.compare_digest(stored, hash_secret(credential)):
            raise PermissionDenied("peer authentication failed")
        return peer

    def update_meta(self, peer: Peer, meta: PeerMetaUpdate) -> Peer:
        """Records what the agent reports; a change of anything others see moves the serial."""
        check_length(meta.hostname, "hostname")
        check_length(meta.os, "os")
        check_length(meta.kernel_version, "kernel version")
        check_length(meta.version, "agent version", 64)
        with self.uow.write(peer.account_id) as tx:
            current = tx.peer(peer.id)
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
            tx.update_peer(current)
            if after != before:
                tx.changed("peer", current.id)
            return current

    def set_connected(self, peer_id: str, when: datetime) -> None:
        """Connection status is not a user change: no serial, no event."""
        with self.uow.write_unlocked() as tx:
            tx.set_peer_status(peer_id, True, when)

    def set_disconnected(self, peer_id: str, connected_at: datetime, when: datetime) -> None:
        """Only the stream that connected the peer last may mark it disconnected: an agent that
        moved to another stream or replica in the meantime stays connected."""
        with self.uow.write_unlocked() as tx:
            tx.set_peer_status(peer_id, False, when, if_last_seen=connected_at)

    def reset_connections(self) -> None:
        """At start of a server that is the store's only one (SQLite): nobody is connected yet."""
        with self.uow.write_unlocked() as tx:
            tx.reset_connections()


def _peer_groups(tx: Tx, account_id: str) -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    for g in tx.groups(account_id):
        for pid in g.peers:
            result.setdefault(pid, []).append((g.id, g.name))
    return result


def _domain(tx: WriteTx, account_id: str) -> str:
    return tx.account_obj.domain
