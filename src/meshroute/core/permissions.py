"""Who may do what: NetBird's role matrix (reference §2.1), as pure data and one function."""

from __future__ import annotations

from enum import StrEnum

from meshroute.core.errors import NotFound, PermissionDenied
from meshroute.core.model import Role, User


class Op(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


MODULES = (
    "accounts",
    "dns",
    "events",
    "groups",
    "identity_providers",
    "nameservers",
    "networks",
    "pats",
    "peers",
    "policies",
    "routes",
    "settings",
    "setup_keys",
    "users",
)

_ALL = frozenset(Op)
_READ = frozenset({Op.READ})
_NONE: frozenset[Op] = frozenset()

# Explicit entries per role; anything not listed falls back to the role's default.
_EXPLICIT: dict[Role, dict[str, frozenset[Op]]] = {
    Role.OWNER: {},
    Role.ADMIN: {"accounts": _READ},
    Role.NETWORK_ADMIN: {
        **{m: _ALL for m in ("networks", "groups", "dns", "nameservers", "policies", "routes", "pats")},
        **{
            m: _READ
            for m in ("settings", "accounts", "events", "users", "setup_keys", "peers", "identity_providers")
        },
    },
    Role.AUDITOR: {},
    # Regular users manage their own tokens (NetBird's user role); whose tokens one may touch
    # is decided per token owner (services.users), not here.
    Role.USER: {"pats": _ALL},
}
_DEFAULT: dict[Role, frozenset[Op]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL,
    Role.NETWORK_ADMIN: _NONE,
    Role.AUDITOR: _READ,
    Role.USER: _NONE,
}


def allowed(user: User, module: str, op: Op) -> bool:
    if op == Op.READ and user.is_service_user:
        return True
    grants = _EXPLICIT[user.role].get(module.split(".")[0], _DEFAULT[user.role])
    return op in grants


def require(user: User | None, account_id: str, module: str, op: Op) -> None:
    """Raise PermissionDenied unless `user` may perform `op` on `module` in `account_id`."""
    if user is None:
        raise PermissionDenied("failed to validate user permissions: user not found")
    if user.blocked:
        raise PermissionDenied("failed to validate user permissions: user is blocked")
    if user.account_id != account_id:
        raise PermissionDenied("failed to validate user permissions: user is not part of this account")
    if not allowed(user, module, op):
        raise PermissionDenied("permission denied")


def module_permissions(user: User) -> dict[str, dict[str, bool]]:
    """The `permissions.modules` object of the user resource."""
    return {m: {op.value: allowed(user, m, op) for op in Op} for m in MODULES}


def is_admin_powered(user: User) -> bool:
    return user.role in (Role.OWNER, Role.ADMIN)


def token_owner(initiator: User | None, target: User | None, account_id: str, op: Op) -> User:
    """The user whose tokens `initiator` may `op`: themselves, or a service user for an admin."""
    if target is None or target.account_id != account_id:
        raise NotFound("user not found")
    if initiator is None or (
        initiator.id != target.id and not (is_admin_powered(initiator) and target.is_service_user)
    ):
        raise PermissionDenied("admin role required to perform this action")
    require(initiator, account_id, "pats", op)
    return target
