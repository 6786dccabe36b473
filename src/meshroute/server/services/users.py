"""Users (people and service users), their roles and blocking, and personal access tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unauthorized,
)
from meshroute.core.ids import new_id
from meshroute.core.limits import check_length
from meshroute.core.model import PersonalAccessToken, Role, User
from meshroute.core.permissions import Op
from meshroute.core.tokens import hash_secret, new_pat, pat_well_formed
from meshroute.server.services.setup_keys import _check_groups
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.store.repo import utcnow

MODULE = "users"
PATS = "pats"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument(f"invalid user role: {value!r}") from None


class UserService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, token: str) -> User:
        """A PAT to its user: format, checksum, hash lookup, expiry, then last-used stamp."""
        if not pat_well_formed(token):
            raise Unauthorized("token invalid")
        with self.uow.read() as tx:
            pat = tx.pat_by_hash(hash_secret(token))
            user = tx.user(pat.user_id) if pat else None
        now = utcnow()
        if pat is None or user is None or pat.expiration_date <= now:
            raise Unauthorized("token invalid")
        if user.blocked:
            raise PermissionDenied("failed to validate user permissions: user is blocked")
        if pat.last_used is None or now - pat.last_used > timedelta(minutes=1):
            with self.uow.write_unlocked() as wtx:
                wtx.touch_pat(pat.id, now)
        return user

    # -- users ----------------------------------------------------------------------------------
    def current(self, user: User) -> User:
        return user

    def list_all(self, account_id: str, user_id: str, service_user: bool | None = None) -> list[User]:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.READ)
            users = tx.users(account_id)
        if service_user is not None:
            users = [u for u in users if u.is_service_user == service_user]
        return users

    def create(
        self,
        account_id: str,
        user_id: str,
        *,
        role: str,
        name: str,
        email: str,
        auto_groups: Sequence[str],
        is_service_user: bool,
    ) -> User:
        new_role = parse_role(role)
        if new_role == Role.OWNER:
            raise InvalidArgument("can't create a user with owner role")
        if not is_service_user:
            raise PreconditionFailed(
                "creating regular users needs an identity provider, which this server does not have; "
                "create a service user instead"
            )
        if not name.strip():
            raise InvalidArgument("service user name shouldn't be empty")
        check_length(name, "user name")
        check_length(email, "email")
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.CREATE)
            _check_groups(tx, auto_groups)
            user = User(
                id=new_id(),
                account_id=account_id,
                role=new_role,
                name=name,
                email=email,
                is_service_user=True,
                auto_groups=list(dict.fromkeys(auto_groups)),
                created_at=utcnow(),
            )
            tx.insert_user(user)
            tx.changed("user", user.id)
            meta = {"name": user.name, "created_at": user.created_at.isoformat() if user.created_at else ""}
            tx.add_event(account_id, Activity.SERVICE_USER_CREATED, user_id, user.id, meta)
        return user

    def update(
        self,
        account_id: str,
        user_id: str,
        target_id: str,
        *,
        role: str,
        auto_groups: Sequence[str],
        blocked: bool,
    ) -> User:
        new_role = parse_role(role)
        with self.uow.write(account_id) as tx:
            initiator = tx.user(user_id)
            permissions.require(initiator, account_id, MODULE, Op.UPDATE)
            assert initiator is not None
            target = tx.user(target_id)
            if target is None or target.account_id != account_id:
                raise NotFound(f"user: {target_id} not found")
            if target.id == initiator.id and blocked != target.blocked:
                raise PermissionDenied("user can't block or unblock themselves")
            if target.id == initiator.id and new_role != target.role:
                raise PermissionDenied("user can't change their own role")
            if new_role == Role.OWNER and target.role != Role.OWNER:
                raise PermissionDenied("the owner role can't be assigned")
            if target.role == Role.OWNER and new_role != Role.OWNER:
                raise PermissionDenied("the owner's role can't be changed")
            if target.role == Role.OWNER and blocked:
                raise PermissionDenied("the owner can't be blocked")
            _check_groups(tx, auto_groups)
            events: list[tuple[Activity, dict[str, object]]] = []
            if new_role != target.role:
                events.append((Activity.USER_ROLE_UPDATED, {"role": new_role.value, "name": target.name}))
            if blocked != target.blocked:
                events.append(
                    (Activity.USER_BLOCKED if blocked else Activity.USER_UNBLOCKED, {"name": target.name})
                )
            target.role, target.blocked, target.auto_groups = (
                new_role,
                blocked,
                list(dict.fromkeys(auto_groups)),
            )
            tx.update_user(target)
            tx.changed("user", target.id)
            for activity, meta in events:
                tx.add_event(account_id, activity, user_id, target.id, meta)
            return target

    def delete(self, account_id: str, user_id: str, target_id: str) -> None:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.DELETE)
            target = tx.user(target_id)
            if target is None or target.account_id != account_id:
                raise NotFound(f"user: {target_id} not found")
            if target.id == user_id:
                raise PermissionDenied("self deletion is not allowed")
            if target.role == Role.OWNER:
                raise PermissionDenied("unable to delete a user with owner role")
            tx.delete_user(target_id)
            tx.changed("user", target_id, deleted=True)
            activity = Activity.SERVICE_USER_DELETED if target.is_service_user else Activity.USER_DELETED
            tx.add_event(account_id, activity, user_id, target_id, {"name": target.name})

    # -- tokens ---------------------------------------------------------------------------------
    def _token_owner(self, initiator: User | None, target: User | None, account_id: str, op: Op) -> User:
        if target is None or target.account_id != account_id:
            raise NotFound("user not found")
        assert initiator is not None
        if initiator.id != target.id and not (
            permissions.is_admin_powered(initiator) and target.is_service_user
        ):
            raise PermissionDenied("admin role required to perform this action")
        permissions.require(initiator, account_id, PATS, op)
        return target

    def list_tokens(self, account_id: str, user_id: str, target_id: str) -> list[PersonalAccessToken]:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, PATS, Op.READ)
            self._token_owner(tx.user(user_id), tx.user(target_id), account_id, Op.READ)
            return tx.pats(target_id)

    def get_token(self, account_id: str, user_id: str, target_id: str, token_id: str) -> PersonalAccessToken:
        for pat in self.list_tokens(account_id, user_id, target_id):
            if pat.id == token_id:
                return pat
        raise NotFound(f"token: {token_id} not found")

    def create_token(
        self, account_id: str, user_id: str, target_id: str, name: str, expires_in_days: int
    ) -> tuple[PersonalAccessToken, str]:
        if not name:
            raise InvalidArgument("token name can't be empty")
        check_length(name, "token name")
        if not 1 <= expires_in_days <= 365:
            raise InvalidArgument("expiration has to be between 1 and 365")
        with self.uow.write(account_id) as tx:
            initiator = tx.user(user_id)
            permissions.require(initiator, account_id, PATS, Op.CREATE)
            target = self._token_owner(initiator, tx.user(target_id), account_id, Op.CREATE)
            plain = new_pat()
            now = utcnow()
            pat = PersonalAccessToken(
                id=new_id(),
                user_id=target.id,
                name=name,
                hashed_token=hash_secret(plain),
                expiration_date=now + timedelta(days=expires_in_days),
                created_by=user_id,
                created_at=now,
            )
            tx.insert_pat(pat)
            tx.changed("token", pat.id)
            meta = {"name": pat.name, "is_service_user": target.is_service_user, "user_name": target.name}
            tx.add_event(account_id, Activity.PAT_CREATED, user_id, target.id, meta)
        return pat, plain

    def delete_token(self, account_id: str, user_id: str, target_id: str, token_id: str) -> None:
        with self.uow.write(account_id) as tx:
            initiator = tx.user(user_id)
            permissions.require(initiator, account_id, PATS, Op.DELETE)
            target = self._token_owner(initiator, tx.user(target_id), account_id, Op.DELETE)
            pat = next((p for p in tx.pats(target.id) if p.id == token_id), None)
            if pat is None:
                raise NotFound(f"token: {token_id} not found")
            tx.delete_pat(token_id)
            tx.changed("token", token_id, deleted=True)
            meta = {"name": pat.name, "is_service_user": target.is_service_user, "user_name": target.name}
            tx.add_event(account_id, Activity.PAT_DELETED, user_id, target.id, meta)
