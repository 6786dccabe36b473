"""Accounts: creation with an owner on first start, settings, and the audit log."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from meshroute.core import permissions
from meshroute.core.activity import SYSTEM_USER, Activity
from meshroute.core.changes import AccountUpdated, TokenCreated
from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.core.ids import new_id
from meshroute.core.model import ALL_GROUP_NAME, Account, Group, PersonalAccessToken, Role, User
from meshroute.core.permissions import Op
from meshroute.core.tokens import hash_secret, new_pat
from meshroute.server.clock import utcnow
from meshroute.server.services.uow import UnitOfWork

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
    """The settings a caller gives; None keeps the stored value."""

    peer_login_expiration_enabled: bool | None = None
    peer_login_expiration: int | None = None
    peer_inactivity_expiration_enabled: bool | None = None
    peer_inactivity_expiration: int | None = None
    regular_users_view_blocked: bool | None = None


class AccountService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def bootstrap(self, domain: str = "meshroute.internal") -> Bootstrap | None:
        """On an empty store: an account, its All group, an owner and the owner's token."""
        with self.uow.read() as tx:
            if tx.accounts.first() is not None:
                return None
        now = utcnow()
        v4, v6 = new_overlay_networks()
        owner_id = new_id()
        account = Account(new_id(), domain, v4, v6, 0, now, owner_id)
        owner = User(owner_id, account.id, Role.OWNER, name="owner", created_at=now, issued="api")
        token = new_pat()
        with self.uow.write_unlocked() as tx:
            tx.accounts.lock_bootstrap()
            if tx.accounts.first() is not None:  # another replica won the race
                return None
            tx.accounts.add(account)
            tx.users.add(owner)
            tx.groups.add(Group(new_id(), account.id, ALL_GROUP_NAME))
            tx.tokens.add(
                PersonalAccessToken(
                    new_id(), owner_id, "admin", hash_secret(token), now + timedelta(days=365), owner_id, now
                )
            )
            tx.events.add(account.id, Activity.ACCOUNT_CREATED, owner_id, account.id, {})
        return Bootstrap(account, owner, token)

    def issue_owner_token(self, days: int = 365) -> tuple[User, str]:
        """An operator's way back in (lost or expired token): a new token for the first account's
        owner, made directly in the store. Recorded in the audit log as the system's doing."""
        with self.uow.read() as rtx:
            account = rtx.accounts.first()
            owner = (
                next((u for u in rtx.users.all(account.id) if u.role == Role.OWNER), None)
                if account
                else None
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
            SYSTEM_USER,
            now,
        )
        with self.uow.write(account.id) as tx:
            tx.tokens.add(pat)
            tx.record(TokenCreated(pat))
            tx.events.add(
                account.id,
                Activity.PAT_CREATED,
                SYSTEM_USER,
                owner.id,
                {"name": pat.name, "user_name": owner.name},
            )
        return owner, token

    def update_settings(self, account_id: str, user_id: str, target_id: str, s: SettingsUpdate) -> Account:
        """Merges the given settings into the stored ones, in one transaction. The checks run in
        the reference's order: reading the account, its ID, the values, then the right to change."""
        with self.uow.write(account_id) as tx:
            user = tx.users.get(user_id)
            permissions.require(user, account_id, "accounts", Op.READ)
            if target_id != account_id:
                raise NotFound(f"account: {target_id} not found")
            account = tx.account
            given = {k: v for k, v in dataclasses.asdict(s).items() if v is not None}
            login = given.get("peer_login_expiration", account.peer_login_expiration)
            inactivity = given.get("peer_inactivity_expiration", account.peer_inactivity_expiration)
            # Checked whether or not the feature is on: a stored value is used once it is turned on.
            if not 3600 <= login <= 180 * 86400:
                raise InvalidArgument(
                    "peer login expiration can't be smaller than one hour or bigger than 180 days"
                )
            if not 600 <= inactivity <= 180 * 86400:
                raise InvalidArgument(
                    "peer inactivity expiration can't be smaller than 10 minutes or bigger than 180 days"
                )
            permissions.require(user, account_id, "settings", Op.UPDATE)
            for name, value in given.items():
                setattr(account, name, value)
            tx.accounts.update_settings(account)
            tx.events.add(account_id, Activity.ACCOUNT_SETTINGS_UPDATED, user_id, account_id, {})
            tx.record(AccountUpdated(account))
            account.network_serial = tx.changeset.serial
            return account
