"""The role matrix (reference §2.1): who may do what on which module."""

from __future__ import annotations

import pytest

from meshroute.core.errors import PermissionDenied
from meshroute.core.model import Role, User
from meshroute.core.permissions import (
    MODULES,
    Op,
    allowed,
    is_admin_powered,
    module_permissions,
    require,
)
from meshroute.server.api.errors import http_status

ACCOUNT = "acc-1"
OPS = [Op.READ, Op.CREATE, Op.UPDATE, Op.DELETE]


def user(role: Role, *, service: bool = False, blocked: bool = False, account: str = ACCOUNT) -> User:
    return User(id=f"u-{role.value}", account_id=account, role=role, is_service_user=service, blocked=blocked)


# §2.1 "Role matrix for module routes"
ROUTES_MATRIX: dict[Role, dict[Op, bool]] = {
    Role.OWNER: {Op.READ: True, Op.CREATE: True, Op.UPDATE: True, Op.DELETE: True},
    Role.ADMIN: {Op.READ: True, Op.CREATE: True, Op.UPDATE: True, Op.DELETE: True},
    Role.NETWORK_ADMIN: {Op.READ: True, Op.CREATE: True, Op.UPDATE: True, Op.DELETE: True},
    Role.AUDITOR: {Op.READ: True, Op.CREATE: False, Op.UPDATE: False, Op.DELETE: False},
    Role.USER: {Op.READ: False, Op.CREATE: False, Op.UPDATE: False, Op.DELETE: False},
}

MATRIX_CASES = [(role, op, ok) for role, ops in ROUTES_MATRIX.items() for op, ok in ops.items()]


def test_op_values() -> None:
    assert [o.value for o in Op] == ["read", "create", "update", "delete"]


def test_every_role_is_in_the_matrix() -> None:
    assert set(ROUTES_MATRIX) == set(Role)
    assert {r.value for r in Role} == {"owner", "admin", "network_admin", "auditor", "user"}


@pytest.mark.parametrize(
    ("role", "op", "ok"), MATRIX_CASES, ids=[f"{r.value}-{o.value}" for r, o, _ in MATRIX_CASES]
)
def test_routes_matrix_allowed(role: Role, op: Op, ok: bool) -> None:
    assert allowed(user(role), "routes", op) is ok


@pytest.mark.parametrize(
    ("role", "op", "ok"), MATRIX_CASES, ids=[f"{r.value}-{o.value}" for r, o, _ in MATRIX_CASES]
)
def test_routes_matrix_require(role: Role, op: Op, ok: bool) -> None:
    if ok:
        assert require(user(role), ACCOUNT, "routes", op) is None
    else:
        with pytest.raises(PermissionDenied) as exc:
            require(user(role), ACCOUNT, "routes", op)
        assert exc.value.message == "permission denied"
        assert http_status(exc.value) == 403


# ---- service users ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("module", [*MODULES, "some_future_module"])
def test_service_user_may_always_read(role: Role, module: str) -> None:
    u = user(role, service=True)
    assert allowed(u, module, Op.READ)
    require(u, ACCOUNT, module, Op.READ)


@pytest.mark.parametrize(
    ("role", "op", "ok"), MATRIX_CASES, ids=[f"{r.value}-{o.value}" for r, o, _ in MATRIX_CASES]
)
def test_service_user_writes_follow_the_role(role: Role, op: Op, ok: bool) -> None:
    expected = True if op == Op.READ else ok
    assert allowed(user(role, service=True), "routes", op) is expected


def test_service_user_with_user_role_cannot_write_routes() -> None:
    u = user(Role.USER, service=True)
    require(u, ACCOUNT, "routes", Op.READ)
    for op in (Op.CREATE, Op.UPDATE, Op.DELETE):
        with pytest.raises(PermissionDenied, match=r"^permission denied$"):
            require(u, ACCOUNT, "routes", op)


# ---- blocked / other account / unknown user -------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("op", OPS)
def test_blocked_user(role: Role, op: Op) -> None:
    with pytest.raises(PermissionDenied) as exc:
        require(user(role, blocked=True), ACCOUNT, "routes", op)
    assert exc.value.message == "failed to validate user permissions: user is blocked"
    assert http_status(exc.value) == 403


def test_blocked_service_user_cannot_even_read() -> None:
    with pytest.raises(PermissionDenied, match="user is blocked"):
        require(user(Role.OWNER, service=True, blocked=True), ACCOUNT, "routes", Op.READ)


def test_blocked_check_precedes_account_check() -> None:
    u = user(Role.OWNER, blocked=True, account="other-account")
    with pytest.raises(PermissionDenied) as exc:
        require(u, ACCOUNT, "routes", Op.READ)
    assert exc.value.message == "failed to validate user permissions: user is blocked"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("service", [False, True])
def test_user_of_another_account(role: Role, service: bool) -> None:
    u = user(role, service=service, account="other-account")
    with pytest.raises(PermissionDenied) as exc:
        require(u, ACCOUNT, "routes", Op.READ)
    assert exc.value.message == "failed to validate user permissions: user is not part of this account"


def test_account_check_precedes_role_check() -> None:
    # A plain user of another account gets the account message, not "permission denied".
    with pytest.raises(PermissionDenied, match="user is not part of this account"):
        require(user(Role.USER, account="other"), ACCOUNT, "routes", Op.CREATE)


def test_unknown_user() -> None:
    with pytest.raises(PermissionDenied) as exc:
        require(None, ACCOUNT, "routes", Op.READ)
    assert exc.value.message.startswith("failed to validate user permissions: ")
    assert "not found" in exc.value.message
    assert http_status(exc.value) == 403


# ---- whole matrix per role ------------------------------------------------------------------

NETWORK_ADMIN_FULL = ["networks", "groups", "dns", "nameservers", "policies", "routes", "pats"]
NETWORK_ADMIN_READ = ["settings", "accounts", "events", "users", "setup_keys", "peers", "identity_providers"]


def test_modules_list_covers_the_reference_modules() -> None:
    assert set(MODULES) == set(NETWORK_ADMIN_FULL) | set(NETWORK_ADMIN_READ)
    assert len(MODULES) == len(set(MODULES))


@pytest.mark.parametrize("module", NETWORK_ADMIN_FULL)
@pytest.mark.parametrize("op", OPS)
def test_network_admin_full_modules(module: str, op: Op) -> None:
    assert allowed(user(Role.NETWORK_ADMIN), module, op)


@pytest.mark.parametrize("module", NETWORK_ADMIN_READ)
@pytest.mark.parametrize("op", OPS)
def test_network_admin_read_only_modules(module: str, op: Op) -> None:
    assert allowed(user(Role.NETWORK_ADMIN), module, op) is (op == Op.READ)


@pytest.mark.parametrize("module", ["billing", "some_future_module", ""])
@pytest.mark.parametrize("op", OPS)
def test_network_admin_denied_elsewhere(module: str, op: Op) -> None:
    assert not allowed(user(Role.NETWORK_ADMIN), module, op)


def test_network_admin_examples_from_the_brief() -> None:
    na = user(Role.NETWORK_ADMIN)
    assert allowed(na, "setup_keys", Op.READ)
    assert not allowed(na, "setup_keys", Op.CREATE)
    assert not allowed(na, "setup_keys", Op.DELETE)
    assert all(allowed(na, "groups", op) for op in OPS)


@pytest.mark.parametrize("module", [*MODULES, "some_future_module"])
@pytest.mark.parametrize("op", OPS)
def test_owner_may_do_everything(module: str, op: Op) -> None:
    assert allowed(user(Role.OWNER), module, op)


@pytest.mark.parametrize("module", [*MODULES, "some_future_module"])
@pytest.mark.parametrize("op", OPS)
def test_admin_everything_but_account_writes(module: str, op: Op) -> None:
    expected = op == Op.READ if module == "accounts" else True
    assert allowed(user(Role.ADMIN), module, op) is expected


@pytest.mark.parametrize("module", [*MODULES, "some_future_module"])
@pytest.mark.parametrize("op", OPS)
def test_auditor_reads_everything_writes_nothing(module: str, op: Op) -> None:
    assert allowed(user(Role.AUDITOR), module, op) is (op == Op.READ)


@pytest.mark.parametrize("module", [*MODULES, "some_future_module"])
@pytest.mark.parametrize("op", OPS)
def test_user_may_do_nothing_but_manage_tokens(module: str, op: Op) -> None:
    """NetBird's user role: every module denied except `pats` (their own tokens)."""
    assert allowed(user(Role.USER), module, op) is (module == "pats")


@pytest.mark.parametrize(
    ("role", "module", "op", "ok"),
    [
        (Role.NETWORK_ADMIN, "routes.sub", Op.DELETE, True),
        (Role.NETWORK_ADMIN, "setup_keys.sub", Op.READ, True),
        (Role.NETWORK_ADMIN, "setup_keys.sub", Op.UPDATE, False),
        (Role.ADMIN, "accounts.sub", Op.UPDATE, False),
        (Role.ADMIN, "accounts.sub", Op.READ, True),
        (Role.AUDITOR, "routes.sub", Op.CREATE, False),
    ],
)
def test_dotted_sub_module_falls_back_to_parent(role: Role, module: str, op: Op, ok: bool) -> None:
    assert allowed(user(role), module, op) is ok


def test_ops_from_their_names_decide_like_the_ops() -> None:
    """Ops also arrive as names (the keys of `permissions.modules`): each names one Op, which
    decides as that Op does, and an unknown name is no Op at all."""
    assert [Op(op.value) for op in Op] == list(Op)
    require(user(Role.AUDITOR), ACCOUNT, "routes", Op("read"))
    with pytest.raises(PermissionDenied):
        require(user(Role.AUDITOR), ACCOUNT, "routes", Op("delete"))
    with pytest.raises(ValueError):
        Op("write")


# ---- module_permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("service", [False, True])
def test_module_permissions_shape(role: Role, service: bool) -> None:
    u = user(role, service=service)
    perms = module_permissions(u)
    assert set(perms) == set(MODULES)
    for module, ops in perms.items():
        assert set(ops) == {"read", "create", "update", "delete"}
        assert all(isinstance(v, bool) for v in ops.values())
        for op in OPS:
            assert ops[op.value] is allowed(u, module, op)


def test_module_permissions_network_admin() -> None:
    perms = module_permissions(user(Role.NETWORK_ADMIN))
    assert perms["routes"] == {"read": True, "create": True, "update": True, "delete": True}
    assert perms["groups"] == {"read": True, "create": True, "update": True, "delete": True}
    assert perms["setup_keys"] == {"read": True, "create": False, "update": False, "delete": False}


def test_module_permissions_service_user_with_user_role() -> None:
    perms = module_permissions(user(Role.USER, service=True))
    assert perms.pop("pats") == {"read": True, "create": True, "update": True, "delete": True}
    for ops in perms.values():
        assert ops == {"read": True, "create": False, "update": False, "delete": False}


def test_module_permissions_plain_user() -> None:
    perms = module_permissions(user(Role.USER))
    assert perms.pop("pats") == {"read": True, "create": True, "update": True, "delete": True}
    assert not any(v for ops in perms.values() for v in ops.values())


@pytest.mark.parametrize(
    ("role", "powered"),
    [
        (Role.OWNER, True),
        (Role.ADMIN, True),
        (Role.NETWORK_ADMIN, False),
        (Role.AUDITOR, False),
        (Role.USER, False),
    ],
)
def test_is_admin_powered(role: Role, powered: bool) -> None:
    assert is_admin_powered(user(role)) is powered
