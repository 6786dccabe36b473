"""Setup keys: secrets with which new peers join an account, optionally into groups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.changes import SetupKeyDeleted, SetupKeyUpserted
from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.core.ids import new_id
from meshroute.core.limits import MAX_INT32, check_length, check_range
from meshroute.core.model import SetupKey
from meshroute.core.permissions import Op
from meshroute.core.tokens import hash_secret, new_setup_key
from meshroute.server.clock import utcnow
from meshroute.server.services.groups import check_group_ids
from meshroute.server.services.uow import UnitOfWork

MODULE = "setup_keys"
KEY_TYPES = ("reusable", "one-off")
MIN_EXPIRY_S = 86400
MAX_EXPIRY_S = 365 * 86400


def _meta(k: SetupKey) -> dict[str, object]:
    return {"name": k.name, "type": k.type, "key": k.key_prefix + "****"}


class SetupKeyService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def create(
        self,
        account_id: str,
        user_id: str,
        *,
        name: str,
        key_type: str,
        expires_in: int,
        auto_groups: Sequence[str],
        usage_limit: int,
        ephemeral: bool = False,
        allow_extra_dns_labels: bool = False,
    ) -> tuple[SetupKey, str]:
        """Returns the key and its plain secret, which is never shown again."""
        if not name.strip():
            raise InvalidArgument("setup key name shouldn't be empty")
        if key_type not in KEY_TYPES:
            raise InvalidArgument(f"invalid setup key type: {key_type!r} (expected reusable or one-off)")
        if expires_in != 0 and not MIN_EXPIRY_S <= expires_in <= MAX_EXPIRY_S:
            raise InvalidArgument("expires_in should be 0 (never) or between 86400 and 31536000 seconds")
        check_length(name, "setup key name")
        check_range(usage_limit, "usage_limit", 0, MAX_INT32)
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.CREATE)
            check_group_ids(tx, auto_groups)
            secret = new_setup_key()
            now = utcnow()
            key = SetupKey(
                id=new_id(),
                account_id=account_id,
                name=name,
                key_hash=hash_secret(secret),
                key_prefix=secret[:5],
                type=key_type,
                created_at=now,
                updated_at=now,
                expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
                auto_groups=list(dict.fromkeys(auto_groups)),
                usage_limit=1 if key_type == "one-off" else usage_limit,
                ephemeral=ephemeral,
                allow_extra_dns_labels=allow_extra_dns_labels,
            )
            tx.setup_keys.add(key)
            tx.record(SetupKeyUpserted(key))
            tx.events.add(account_id, Activity.SETUP_KEY_CREATED, user_id, key.id, _meta(key))
        return key, secret

    def update(
        self, account_id: str, user_id: str, key_id: str, *, revoked: bool, auto_groups: Sequence[str]
    ) -> SetupKey:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.UPDATE)
            key = tx.setup_keys.get(key_id)
            if key is None:
                raise NotFound(f"setup key: {key_id} not found")
            if key.revoked and not revoked:
                raise InvalidArgument("can't un-revoke a revoked setup key")
            check_group_ids(tx, auto_groups)
            new_groups = list(dict.fromkeys(auto_groups))
            added = [g for g in new_groups if g not in key.auto_groups]
            removed = [g for g in key.auto_groups if g not in new_groups]
            newly_revoked = revoked and not key.revoked
            key.revoked, key.auto_groups, key.updated_at = revoked, new_groups, utcnow()
            tx.setup_keys.update(key)
            tx.record(SetupKeyUpserted(key))
            names = {g.id: g.name for g in tx.groups.by_ids([*added, *removed]).values()}
            for gid in added:
                meta = {**_meta(key), "group": names.get(gid, gid), "group_id": gid}
                tx.events.add(account_id, Activity.GROUP_ADDED_TO_SETUP_KEY, user_id, key.id, meta)
            for gid in removed:
                meta = {**_meta(key), "group": names.get(gid, gid), "group_id": gid}
                tx.events.add(account_id, Activity.GROUP_REMOVED_FROM_SETUP_KEY, user_id, key.id, meta)
            if newly_revoked:
                tx.events.add(account_id, Activity.SETUP_KEY_REVOKED, user_id, key.id, _meta(key))
            if not (added or removed or newly_revoked):
                tx.events.add(account_id, Activity.SETUP_KEY_UPDATED, user_id, key.id, _meta(key))
            return key

    def delete(self, account_id: str, user_id: str, key_id: str) -> None:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.DELETE)
            key = tx.setup_keys.get(key_id)
            if key is None:
                raise NotFound(f"setup key: {key_id} not found")
            tx.setup_keys.delete(key_id)
            tx.record(SetupKeyDeleted(key_id))
            tx.events.add(account_id, Activity.SETUP_KEY_DELETED, user_id, key_id, _meta(key))
