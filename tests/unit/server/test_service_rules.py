"""Service rules on the fake unit of work: permissions, validation, what a change records and
that a refused change changes nothing, all without a database."""

from __future__ import annotations

import base64
import ipaddress
import os
from datetime import UTC, datetime

import pytest

from meshroute.core.changes import (
    AccountUpdated,
    GroupUpserted,
    PeerDeleted,
    PeerUpserted,
    RouteUpserted,
    TokenCreated,
)
from meshroute.core.errors import (
    AlreadyExists,
    BadRequest,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from meshroute.core.model import NetworkType, Peer, Role, User
from meshroute.core.route_status import PeerStatus
from meshroute.core.status import RequirementCheck, RouteState, RouteUse, StatusReport
from meshroute.server.services import Services
from meshroute.server.services.accounts import SettingsUpdate
from meshroute.server.services.peers import PeerRegistration, PeerUpdate
from meshroute.server.services.routes import RouteInput
from meshroute.server.services.uow import Reader
from meshroute.server.sync.engine import MapEngine
from meshroute.server.views import Views
from tests.unit.server.fakes import FakeUnitOfWork, fake_services


class Account:
    def __init__(self) -> None:
        self.svc, self.uow = fake_services()
        boot = self.svc.accounts.bootstrap()
        assert boot is not None
        self.id, self.owner = boot.account.id, boot.owner.id

    def peer(self, hostname: str, *, auto_groups: list[str] | None = None) -> str:
        _, secret = self.svc.setup_keys.create(
            self.id, self.owner, name="k", key_type="reusable", expires_in=0,
            auto_groups=auto_groups or [], usage_limit=0,
        )  # fmt: skip
        key = base64.b64encode(os.urandom(32)).decode()
        peer, _ = self.svc.peers.register(PeerRegistration(secret, key, hostname))
        return peer.id

    def route(self, net: str, *, peer: str = "", peer_groups: list[str] | None = None) -> RouteInput:
        return RouteInput(
            net_id=net, network=ipaddress.ip_network(net), network_type=NetworkType.IPV4, peer=peer,
            peer_groups=peer_groups or [], groups=[self.group("users")], metric=100, enabled=True,
        )  # fmt: skip

    def group(self, name: str, peers: list[str] | None = None) -> str:
        with self.uow.read(self.id) as tx:
            found = tx.groups.by_name(self.id, name)
        return found.id if found else self.svc.groups.create(self.id, self.owner, name, peers or []).id

    def snapshot(self) -> str:
        return repr(self.uow.memory.state)


@pytest.fixture
def acc() -> Account:
    return Account()


def test_a_change_records_one_serial_and_typed_events_after_the_commit(acc: Account) -> None:
    routers = acc.group("routers")
    data = acc.route("10.1.0.0/16", peer_groups=[routers])
    acc.uow.committed.clear()
    route = acc.svc.routes.create(acc.id, acc.owner, data)
    (cs,) = acc.uow.committed
    assert cs.changes == [RouteUpserted(route)]
    with acc.uow.read() as tx:
        stored = tx.accounts.get(acc.id)
    assert stored is not None and cs.serial == stored.network_serial


def test_a_refused_change_changes_nothing_and_records_nothing(acc: Account) -> None:
    routers = acc.group("routers")
    acc.svc.routes.create(acc.id, acc.owner, acc.route("10.1.0.0/16", peer_groups=[routers]))
    before, committed = acc.snapshot(), len(acc.uow.committed)
    with pytest.raises(AlreadyExists):  # the same destination served by the same group again
        acc.svc.routes.create(acc.id, acc.owner, acc.route("10.1.0.0/16", peer_groups=[routers]))
    with pytest.raises(InvalidArgument):
        bad = acc.route("10.2.0.0/16", peer_groups=[routers])
        bad.metric = 0
        acc.svc.routes.create(acc.id, acc.owner, bad)
    assert acc.snapshot() == before and len(acc.uow.committed) == committed


def test_a_peer_join_records_its_groups_with_it_and_the_peer(acc: Account) -> None:
    office = acc.group("office")
    acc.uow.committed.clear()
    pid = acc.peer("laptop", auto_groups=[office])
    (cs,) = acc.uow.committed[-1:]
    kinds = [type(c) for c in cs.changes]
    assert kinds == [GroupUpserted, GroupUpserted, PeerUpserted]  # All, office, then the peer
    assert all(pid in c.group.peers for c in cs.changes if isinstance(c, GroupUpserted))


def test_a_routing_peer_cannot_be_deleted_and_others_can(acc: Account) -> None:
    router, other = acc.peer("router"), acc.peer("other")
    acc.svc.routes.create(acc.id, acc.owner, acc.route("10.1.0.0/16", peer=router))
    with pytest.raises(PreconditionFailed, match="routing peer of route"):
        acc.svc.peers.delete(acc.id, acc.owner, router)
    acc.svc.peers.delete(acc.id, acc.owner, other)
    assert acc.uow.committed[-1].changes == [PeerDeleted(other)]


def test_a_group_in_use_cannot_be_deleted(acc: Account) -> None:
    routers = acc.group("routers")
    acc.svc.routes.create(acc.id, acc.owner, acc.route("10.1.0.0/16", peer_groups=[routers]))
    before = acc.snapshot()
    with pytest.raises(BadRequest, match="linked to route"):
        acc.svc.groups.delete(acc.id, acc.owner, routers)
    assert acc.snapshot() == before


def test_a_rename_gives_a_new_unique_dns_label(acc: Account) -> None:
    a, b = acc.peer("alpha"), acc.peer("beta")
    renamed = acc.svc.peers.update(acc.id, acc.owner, b, PeerUpdate(name="Alpha"))
    with acc.uow.read(acc.id) as tx:
        labels = {p.id: p.dns_label for p in tx.peers.all(acc.id)}
    assert renamed.name == "Alpha" and labels == {a: "alpha", b: "alpha-1"}


def test_settings_merge_keeps_what_is_not_given_in_one_change(acc: Account) -> None:
    acc.svc.accounts.update_settings(acc.id, acc.owner, acc.id, SettingsUpdate(peer_login_expiration=7200))
    account = acc.svc.accounts.update_settings(
        acc.id, acc.owner, acc.id, SettingsUpdate(peer_login_expiration_enabled=True)
    )
    assert (account.peer_login_expiration, account.peer_login_expiration_enabled) == (7200, True)
    assert [type(c) for c in acc.uow.committed[-1].changes] == [AccountUpdated]
    before = acc.snapshot()
    with pytest.raises(InvalidArgument, match="one hour"):
        acc.svc.accounts.update_settings(acc.id, acc.owner, acc.id, SettingsUpdate(peer_login_expiration=60))
    assert acc.snapshot() == before


def test_roles_and_self_protection(acc: Account) -> None:
    admin = acc.svc.users.create(
        acc.id, acc.owner, role="admin", name="ci", email="", auto_groups=[], is_service_user=True
    )
    with pytest.raises(PermissionDenied, match="owner role can't be assigned"):
        acc.svc.users.update(acc.id, acc.owner, admin.id, role="owner", auto_groups=[], blocked=False)
    with pytest.raises(PermissionDenied, match="block or unblock themselves"):
        acc.svc.users.update(acc.id, acc.owner, acc.owner, role="owner", auto_groups=[], blocked=True)
    auditor = acc.svc.users.create(
        acc.id, acc.owner, role="auditor", name="a", email="", auto_groups=[], is_service_user=True
    )
    with pytest.raises(PermissionDenied):
        acc.svc.groups.create(acc.id, auditor.id, "nope", [])
    assert auditor.role == Role.AUDITOR


def test_tokens_of_service_users_are_an_admins_business(acc: Account) -> None:
    bot = acc.svc.users.create(
        acc.id, acc.owner, role="user", name="bot", email="", auto_groups=[], is_service_user=True
    )
    pat, plain = acc.svc.users.create_token(acc.id, acc.owner, bot.id, "deploy", 30)
    assert acc.uow.committed[-1].changes == [TokenCreated(pat)]
    assert acc.svc.users.authenticate(plain).id == bot.id
    with pytest.raises(PermissionDenied, match="admin role required"):
        acc.svc.users.create_token(acc.id, bot.id, acc.owner, "steal", 30)


def test_the_fake_rolls_a_failed_transaction_back() -> None:
    uow = FakeUnitOfWork()
    svc = Services.create(uow)
    boot = svc.accounts.bootstrap()
    assert boot is not None
    with pytest.raises(RuntimeError), uow.write(boot.account.id) as tx:
        tx.events.add(boot.account.id, 0, "x", "y", {})
        raise RuntimeError("the database went away")
    with uow.read() as tx:
        assert len(tx.events.all(boot.account.id)) == 1  # only the account's creation


# -- status reports -------------------------------------------------------------------------------
def _views(acc: Account) -> Views:
    return Views(Reader(acc.uow.memory), MapEngine(Reader(acc.uow.memory)))


def _peer_object(acc: Account, peer_id: str) -> Peer:
    with acc.uow.read(acc.id) as tx:
        found = tx.peers.get(peer_id)
    assert found is not None
    return found


def _stored(acc: Account, peer_id: str) -> PeerStatus | None:
    with acc.uow.read(acc.id) as tx:
        return tx.status_reports.get(peer_id)


LAN = RouteUse("lan|10.1.0.0/16", ("r:gw",), "gw", RouteState.ROUTING)
CHECKS = (RequirementCheck("forwarding", True), RequirementCheck("firewall", False, "table x drops"))


def test_a_status_report_is_no_user_change_and_replaces_the_last_one(acc: Account) -> None:
    peer = _peer_object(acc, acc.peer("laptop"))
    state = acc.uow.memory.state
    serial, events = state.accounts[acc.id].network_serial, len(state.events)
    committed = len(acc.uow.committed)
    acc.svc.peers.report_status(peer, StatusReport((LAN,), CHECKS))
    first = _stored(acc, peer.id)
    assert first is not None and first.report == StatusReport((LAN,), CHECKS) and first.account_id == acc.id
    # no serial, no change set (nothing for the map engine), no event
    assert state.accounts[acc.id].network_serial == serial
    assert len(acc.uow.committed) == committed and len(state.events) == events
    # the same report again changes nothing, its time included; another one replaces it
    acc.svc.peers.report_status(peer, StatusReport((LAN,), CHECKS))
    assert _stored(acc, peer.id) == first
    acc.svc.peers.report_status(peer, StatusReport())
    later = _stored(acc, peer.id)
    assert later is not None and later.report == StatusReport() and later.updated_at >= first.updated_at


def test_a_bad_status_report_stores_nothing_and_a_deleted_peer_loses_its_report(acc: Account) -> None:
    peer = _peer_object(acc, acc.peer("laptop"))
    acc.svc.peers.report_status(peer, StatusReport((LAN,)))
    before = acc.snapshot()
    for bad in (
        StatusReport((LAN,) * 1001),
        StatusReport((RouteUse("h\x00", ("r",), "", RouteState.KEPT),)),
        StatusReport(checks=(RequirementCheck("x" * 65, True),)),
    ):
        with pytest.raises(InvalidArgument):
            acc.svc.peers.report_status(peer, bad)
    assert acc.snapshot() == before
    acc.svc.peers.delete(acc.id, acc.owner, peer.id)
    assert acc.uow.memory.state.status_reports == {}
    acc.svc.peers.report_status(peer, StatusReport((LAN,)))  # a late report of a deleted peer
    assert acc.uow.memory.state.status_reports == {}


def test_the_route_status_view_lists_each_client_with_its_state(acc: Account) -> None:
    gws = acc.group("gws")
    gw1, gw2 = acc.peer("gw1", auto_groups=[gws]), acc.peer("gw2", auto_groups=[gws])
    users = acc.group("users")
    bob, alice, carol = (acc.peer(n, auto_groups=[users]) for n in ("bob", "alice", "carol"))
    acc.peer("outsider")  # not in the distribution group
    route = acc.svc.routes.create(acc.id, acc.owner, acc.route("10.1.0.0/16", peer_groups=[gws]))
    use = RouteUse(route.ha_unique_id(), (f"{route.id}:{gw1}", f"{route.id}:{gw2}"), gw2, RouteState.ROUTING)
    for pid in (alice, bob):
        acc.svc.peers.report_status(_peer_object(acc, pid), StatusReport((use,)))
    acc.svc.peers.set_connected(alice, datetime.now(UTC))  # bob is not connected: stale

    found = _views(acc).route_status(acc.id, acc.owner, route.id)
    assert [(c.peer_id, c.state, c.routing_peer_id, c.last_routing_peer_id) for c in found.clients] == [
        (alice, "routing", gw2, gw2),
        (bob, "stale", None, gw2),
        (carol, "unknown", None, None),
    ]
    assert found.peer_names[gw2] == "gw2"
    with pytest.raises(NotFound):
        _views(acc).route_status(acc.id, acc.owner, "nope")
    with acc.uow.write(acc.id) as tx:  # a person with the user role (the API cannot create one)
        tx.users.add(User("person", acc.id, Role.USER))
    with pytest.raises(PermissionDenied):
        _views(acc).route_status(acc.id, "person", route.id)


def test_the_peer_view_carries_its_last_report(acc: Account) -> None:
    gw = acc.peer("gw")
    views = _views(acc)
    assert views.peer(acc.id, acc.owner, gw).status is None
    acc.svc.peers.report_status(_peer_object(acc, gw), StatusReport(checks=CHECKS))
    shown = views.peer(acc.id, acc.owner, gw).status
    assert shown is not None and shown.report.checks == CHECKS
    assert views.peers(acc.id, acc.owner).status is None  # the list never reads reports
