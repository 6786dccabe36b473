"""Users (people and service users), their roles and blocking, and personal access tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.changes import TokenCreated, TokenDeleted, UserDeleted, UserUpserted
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
from meshroute.server.clock import utcnow
from meshroute.server.services.groups import check_group_ids
from meshroute.server.services.uow import UnitOfWork

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
        return self.authenticate_token(token)[0]

    def authenticate_token(self, token: str) -> tuple[User, PersonalAccessToken]:
        """As `authenticate`, with the token itself (a dashboard session is bound to it)."""
        if not pat_well_formed(token):
            raise Unauthorized("token invalid")
        with self.uow.read() as tx:
            pat = tx.tokens.by_hash(hash_secret(token))
            user = tx.users.get(pat.user_id) if pat else None
        now = utcnow()
        if pat is None or user is None or pat.expiration_date <= now:
            raise Unauthorized("token invalid")
        if user.blocked:
            raise PermissionDenied("failed to validate user permissions: user is blocked")
        if pat.last_used is None or now - pat.last_used > timedelta(minutes=1):
            with self.uow.write_unlocked() as wtx:
                wtx.tokens.touch(pat.id, now)
        return user, pat

    # -- users ----------------------------------------------------------------------------------
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
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.CREATE)
            check_group_ids(tx, auto_groups)
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
            tx.users.add(user)
            tx.record(UserUpserted(user))
            meta = {"name": user.name, "created_at": user.created_at.isoformat() if user.created_at else ""}
            tx.events.add(account_id, Activity.SERVICE_USER_CREATED, user_id, user.id, meta)
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
            initiator = tx.users.get(user_id)
            permissions.require(initiator, account_id, MODULE, Op.UPDATE)
            assert initiator is not None
            target = tx.users.get(target_id)
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
            check_group_ids(tx, auto_groups)
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
            tx.users.update(target)
            tx.record(UserUpserted(target))
            for activity, meta in events:
                tx.events.add(account_id, activity, user_id, target.id, meta)
            return target

    def delete(self, account_id: str, user_id: str, target_id: str) -> None:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.DELETE)
            target = tx.users.get(target_id)
            if target is None or target.account_id != account_id:
                raise NotFound(f"user: {target_id} not found")
            if target.id == user_id:
                raise PermissionDenied("self deletion is not allowed")
            if target.role == Role.OWNER:
                raise PermissionDenied("unable to delete a user with owner role")
            tx.users.delete(target_id)
            tx.record(UserDeleted(target_id))
            activity = Activity.SERVICE_USER_DELETED if target.is_service_user else Activity.USER_DELETED
            tx.events.add(account_id, activity, user_id, target_id, {"name": target.name})

    # -- tokens ---------------------------------------------------------------------------------
    def create_token(
        self, account_id: str, user_id: str, target_id: str, name: str, expires_in_days: int
    ) -> tuple[PersonalAccessToken, str]:
        if not name:
            raise InvalidArgument("token name can't be empty")
        check_length(name, "token name")
        if not 1 <= expires_in_days <= 365:
            raise InvalidArgument("expiration has to be between 1 and 365")
        with self.uow.write(account_id) as tx:
            initiator = tx.users.get(user_id)
            permissions.require(initiator, account_id, PATS, Op.CREATE)
            target = permissions.token_owner(initiator, tx.users.get(target_id), account_id, Op.CREATE)
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
            tx.tokens.add(pat)
            tx.record(TokenCreated(pat))
            meta = {"name": pat.name, "is_service_user": target.is_service_user, "user_name": target.name}
            tx.events.add(account_id, Activity.PAT_CREATED, user_id, target.id, meta)
        return pat, plain

    def delete_token(self, account_id: str, user_id: str, target_id: str, token_id: str) -> None:
        with self.uow.write(account_id) as tx:
            initiator = tx.users.get(user_id)
            permissions.require(initiator, account_id, PATS, Op.DELETE)
            target = permissions.token_owner(initiator, tx.users.get(target_id), account_id, Op.DELETE)
            pat = next((p for p in tx.tokens.all(target.id) if p.id == token_id), None)
            if pat is None:
                raise NotFound(f"token: {token_id} not found")
            tx.tokens.delete(token_id)
            tx.record(TokenDeleted(token_id))
            meta = {"name": pat.name, "is_service_user": target.is_service_user, "user_name": target.name}
            tx.events.add(account_id, Activity.PAT_DELETED, user_id, target.id, meta)
