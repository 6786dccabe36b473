"""Accounts: creation with an owner on first start, settings, and the audit log."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.core.ids import new_id
from meshroute.core.model import ALL_GROUP_NAME, Account, Event, Group, PersonalAccessToken, Role, User
from meshroute.core.permissions import Op
from meshroute.core.tokens import hash_secret, new_pat
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.store.repo import Tx, utcnow

CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def new_overlay_networks() -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    """A random /16 of 100.64.0.0/10 and a random ULA /64 (fd00::/8 + 40-bit global ID)."""
    v4 = ipaddress.IPv4Network((int(CGNAT.network_address) + (secrets.randbelow(64) << 16), 16))
    v6 = ipaddress.IPv6Network(((0xFD << 120) | (secrets.randbits(40) << 80), 64))
    return v4, v6


@dataclass(frozen=True, slots=True)
class Bootstrap:
    account: Account
    owner: User
    token: str


@dataclass(slots=True)
class SettingsUpdate:
    peer_login_expiration_enabled: bool
    peer_login_expiration: int
    peer_inactivity_expiration_enabled: bool
    peer_inactivity_expiration: int
    regular_users_view_blocked: bool


class AccountService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def bootstrap(self, domain: str = "meshroute.internal") -> Bootstrap | None:
        """On an empty store: an account, its All group, an owner and the owner's token."""
        with self.uow.read() as tx:
            if tx.first_account() is not None:
                return None
        now = utcnow()
        v4, v6 = new_overlay_networks()
        owner_id = new_id()
        account = Account(new_id(), domain, v4, v6, 0, now, owner_id)
        owner = User(owner_id, account.id, Role.OWNER, name="owner", created_at=now, issued="api")
        token = new_pat()
        with self.uow.write_unlocked() as tx:
            tx.lock_bootstrap()
            if tx.first_account() is not None:  # another replica won the race
                return None
            tx.insert_account(account)
            tx.insert_user(owner)
            tx.insert_group(Group(new_id(), account.id, ALL_GROUP_NAME))
            tx.insert_pat(
                PersonalAccessToken(
                    new_id(), owner_id, "admin", hash_secret(token), now + timedelta(days=365), owner_id, now
                )
            )
            tx.add_event(account.id, Activity.ACCOUNT_CREATED, owner_id, account.id, {})
        return Bootstrap(account, owner, token)

    def issue_owner_token(self, days: int = 365) -> tuple[User, str]:
        """An operator's way back in (lost or expired token): a new token for the first account's
        owner, made directly in the store. Recorded in the audit log as the system's doing."""
        with self.uow.read() as rtx:
            account = rtx.first_account()
            owner = (
                next((u for u in rtx.users(account.id) if u.role == Role.OWNER), None) if account else None
            )
        if account is None or owner is None:
            raise NotFound("the store has no account yet: start the server once first")
        token = new_pat()
        now = utcnow()
        pat = PersonalAccessToken(
            new_id(),
            owner.id,
            "admin (issued offline)",
            hash_secret(token),
            now + timedelta(days=days),
            "sys",
            now,
        )
        with self.uow.write(account.id) as tx:
            tx.insert_pat(pat)
            tx.changed("token", pat.id)
            tx.add_event(
                account.id, Activity.PAT_CREATED, "sys", owner.id, {"name": pat.name, "user_name": owner.name}
            )
        return owner, token

    def get(self, account_id: str, user_id: str) -> Account:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, "accounts", Op.READ)
            account = tx.account(account_id)
        if account is None:
            raise NotFound(f"account: {account_id} not found")
        return account

    def update_settings(self, account_id: str, user_id: str, target_id: str, s: SettingsUpdate) -> Account:
        if target_id != account_id:
            raise NotFound(f"account: {target_id} not found")
        # Checked whether or not the feature is on: a stored value is used once it is turned on.
        if not 3600 <= s.peer_login_expiration <= 180 * 86400:
            raise InvalidArgument(
                "peer login expiration can't be smaller than one hour or bigger than 180 days"
            )
        if not 600 <= s.peer_inactivity_expiration <= 180 * 86400:
            raise InvalidArgument(
                "peer inactivity expiration can't be smaller than 10 minutes or bigger than 180 days"
            )
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, "settings", Op.UPDATE)
            account = tx.account_obj
            account.peer_login_expiration_enabled = s.peer_login_expiration_enabled
            account.peer_login_expiration = s.peer_login_expiration
            account.peer_inactivity_expiration_enabled = s.peer_inactivity_expiration_enabled
            account.peer_inactivity_expiration = s.peer_inactivity_expiration
            account.regular_users_view_blocked = s.regular_users_view_blocked
            tx.update_account_settings(account)
            tx.changed("account", account_id)
            tx.add_event(account_id, Activity.ACCOUNT_SETTINGS_UPDATED, user_id, account_id, {})
            account.network_serial = tx.changeset.serial
            return account

    def events(
        self, account_id: str, user_id: str, limit: int = 10000
    ) -> tuple[list[Event], dict[str, User]]:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, "events", Op.READ)
            events = tx.events(account_id, limit)
            users = {u.id: u for u in tx.users(account_id)}
        return events, users


def account_of(tx: Tx, user_id: str) -> str:
    user = tx.user(user_id)
    if user is None:
        raise NotFound(f"user: {user_id} not found")
    return user.account_id
