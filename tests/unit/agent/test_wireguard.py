"""WireGuard: the peer diff, the UAPI text protocol, and the reconcilers against fakes."""

from __future__ import annotations

import base64
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.generic.wireguard import (
    WG_CMD_SET_DEVICE,
    WGPEER_F_REMOVE_ME,
    WGPEER_F_REPLACE_ALLOWEDIPS,
    wgmsg,
)

from meshroute.agent.identity import generate_private_key, public_key
from meshroute.agent.reconcile import AddressReconciler, WireGuardReconciler
from meshroute.agent.wireguard import uapi
from meshroute.agent.wireguard.kernel import PEERS_PER_MESSAGE, set_messages
from meshroute.agent.wireguard.model import DeviceSettings, PeerConfig, PeerOp, PeerStats, diff_peers
from meshroute.agent.wireguard.uapi import UapiError, encode_set, parse_get

from .fakes import FakeDevice, FakeNetlink, run


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def hexkey(n: int) -> str:
    return f"{n:02x}" * 32


A, B, C = key(0xA), key(0xB), key(0xC)
PRIV = key(0x40)
PA = PeerConfig(A, ("100.64.0.10/32", "fd00::a/128"), "192.0.2.10:51820")
PB = PeerConfig(B, ("100.64.0.11/32",), "192.0.2.11:51820")
PC = PeerConfig(C, ("100.64.0.12/32",), "[2001:db8::12]:51820")


# -- diff_peers ------------------------------------------------------------------------------------


def test_diff_from_nothing_adds_every_peer_with_endpoint_and_allowed_ips() -> None:
    ops = diff_peers({}, {B: PB, A: PA})
    assert ops == [
        PeerOp(A, endpoint=PA.endpoint, allowed_ips=PA.allowed_ips),
        PeerOp(B, endpoint=PB.endpoint, allowed_ips=PB.allowed_ips),
    ]


def test_diff_of_equal_sets_is_empty() -> None:
    assert diff_peers({A: PA, B: PB}, {A: PA, B: PB}) == []


def test_diff_touches_only_what_differs_and_removes_peers_last() -> None:
    current = {A: PA, B: PB, C: PC}
    new_b = PeerConfig(B, PB.allowed_ips, "198.51.100.11:51820")
    new_c = PeerConfig(C, ("100.64.0.12/32", "fd00::c/128"), PC.endpoint)
    ops = diff_peers(current, {B: new_b, C: new_c})
    assert ops == [
        PeerOp(B, endpoint="198.51.100.11:51820"),  # allowed IPs unchanged: not resent
        PeerOp(C, add_allowed_ips=("fd00::c/128",)),  # gained one: appended, endpoint not resent
        PeerOp(A, remove=True),
    ]


def test_a_prefix_that_moves_is_appended_to_its_new_peer_first_and_the_old_peer_is_left_alone() -> None:
    routed = "10.77.0.0/24"
    before = {A: PeerConfig(A, (*PA.allowed_ips, routed), PA.endpoint), B: PB}
    after = {A: PA, B: PeerConfig(B, (*PB.allowed_ips, routed), PB.endpoint)}
    # One append: WireGuard takes the prefix from A as it gives it to B (no moment without an
    # owner, no list rewritten).
    assert diff_peers(before, after) == [PeerOp(B, add_allowed_ips=(routed,))]
    device = FakeDevice()
    run(device.configure(None, diff_peers({}, before)))
    run(device.configure(None, diff_peers(before, after)))
    assert device.view() == {
        k: PeerConfig(k, tuple(sorted(v.allowed_ips)), v.endpoint) for k, v in after.items()
    }


def test_a_prefix_that_is_withdrawn_rewrites_the_list_and_appends_go_first() -> None:
    routed, other = "10.77.0.0/24", "10.88.0.0/24"
    before = {A: PeerConfig(A, (*PA.allowed_ips, routed), PA.endpoint), B: PB}
    after = {A: PA, B: PeerConfig(B, (*PB.allowed_ips, other), PB.endpoint)}
    assert diff_peers(before, after) == [
        PeerOp(B, add_allowed_ips=(other,)),
        PeerOp(A, allowed_ips=PA.allowed_ips),  # lost a prefix nobody took: rewritten
    ]


def test_diff_cannot_make_wireguard_forget_an_endpoint() -> None:
    assert diff_peers({A: PA}, {A: PeerConfig(A, PA.allowed_ips, None)}) == []
    # ...but an AllowedIPs change still goes through, without an endpoint
    ops = diff_peers({A: PA}, {A: PeerConfig(A, ("100.64.0.10/32",), None)})
    assert ops == [PeerOp(A, allowed_ips=("100.64.0.10/32",))]


def test_diff_sets_an_endpoint_once_one_is_known() -> None:
    ops = diff_peers({A: PeerConfig(A, PA.allowed_ips, None)}, {A: PA})
    assert ops == [PeerOp(A, endpoint=PA.endpoint)]


# -- UAPI encoding ---------------------------------------------------------------------------------


def test_encode_device_settings_with_keys_in_hex() -> None:
    text = encode_set(DeviceSettings(PRIV, 51820, 0x1BD00), [])
    assert text == f"set=1\nprivate_key={hexkey(0x40)}\nlisten_port=51820\nfwmark=113920\n\n"


def test_encode_remove() -> None:
    assert encode_set(None, [PeerOp(A, remove=True)]) == f"set=1\npublic_key={hexkey(0xA)}\nremove=true\n\n"


def test_encode_add_with_endpoint_and_replaced_allowed_ips() -> None:
    text = encode_set(None, [PeerOp(A, endpoint="[2001:db8::a]:51820", allowed_ips=PA.allowed_ips)])
    assert text == (
        "set=1\n"
        f"public_key={hexkey(0xA)}\n"
        "endpoint=[2001:db8::a]:51820\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=100.64.0.10/32\n"
        "allowed_ip=fd00::a/128\n"
        "\n"
    )


def test_encode_endpoint_only_leaves_allowed_ips_alone() -> None:
    text = encode_set(None, [PeerOp(A, endpoint="192.0.2.99:51820")])
    assert text == f"set=1\npublic_key={hexkey(0xA)}\nendpoint=192.0.2.99:51820\n\n"


def test_encode_empty_allowed_ips_clears_them() -> None:
    text = encode_set(None, [PeerOp(A, allowed_ips=())])
    assert text == f"set=1\npublic_key={hexkey(0xA)}\nreplace_allowed_ips=true\n\n"


def test_encode_recreate_is_remove_then_add_in_one_transaction() -> None:
    text = encode_set(
        None,
        [
            PeerOp(B, remove=True),
            PeerOp(A, recreate=True, endpoint="192.0.2.10:51820", allowed_ips=("100.64.0.10/32",)),
        ],
    )
    assert text == (
        "set=1\n"
        f"public_key={hexkey(0xB)}\n"
        "remove=true\n"
        f"public_key={hexkey(0xA)}\n"
        "remove=true\n"
        f"public_key={hexkey(0xA)}\n"
        "endpoint=192.0.2.10:51820\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=100.64.0.10/32\n"
        "\n"
    )
    assert text.count("set=1") == 1 and text.endswith("\n\n") and not text.endswith("\n\n\n")


def test_settings_and_peers_share_one_transaction() -> None:
    text = encode_set(DeviceSettings(PRIV, 1, 2), [PeerOp(A, remove=True)])
    assert text == (
        f"set=1\nprivate_key={hexkey(0x40)}\nlisten_port=1\nfwmark=2\npublic_key={hexkey(0xA)}\nremove=true\n\n"
    )


def test_hex_and_base64_keys_round_trip() -> None:
    assert uapi.b64_to_hex(A) == hexkey(0xA)
    assert uapi.hex_to_b64(hexkey(0xA)) == A


# -- UAPI get --------------------------------------------------------------------------------------

GET_ANSWER = f"""private_key={hexkey(0x40)}
listen_port=51820
fwmark=113920
public_key={hexkey(0xA)}
preshared_key={"00" * 32}
protocol_version=1
endpoint=192.0.2.10:51820
last_handshake_time_sec=1700000000
last_handshake_time_nsec=500000000
tx_bytes=1000
rx_bytes=2000
persistent_keepalive_interval=0
allowed_ip=fd00::a/128
allowed_ip=100.64.0.10/32
public_key={hexkey(0xB)}
preshared_key={"00" * 32}
protocol_version=1
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=0
allowed_ip=100.64.0.11/32
errno=0

"""


def test_parse_get_reads_device_fields_and_every_peer() -> None:
    device, peers = parse_get(GET_ANSWER)
    assert device == {"private_key": hexkey(0x40), "listen_port": "51820", "fwmark": "113920"}
    assert peers == [
        PeerStats(A, "192.0.2.10:51820", 1700000000.5, 2000, 1000, ("100.64.0.10/32", "fd00::a/128")),
        PeerStats(B, None, None, 0, 0, ("100.64.0.11/32",)),
    ]


def test_parse_get_of_a_device_without_peers() -> None:
    assert parse_get("listen_port=51820\nerrno=0\n\n") == ({"listen_port": "51820"}, [])


@pytest.mark.parametrize("answer", ["errno=1\n\n", "errno=-22\n\n", GET_ANSWER.replace("errno=0", "errno=5")])
def test_parse_get_raises_on_an_error_answer(answer: str) -> None:
    with pytest.raises(UapiError, match="errno"):
        parse_get(answer)


# -- UAPI over a socket (a stand-in for wireguard-go's) --------------------------------------------


class UapiStandIn:
    """Answers one request on one connection, like wireguard-go: reads up to the blank line."""

    def __init__(self, path: str, answer: str) -> None:
        self.path, self.answer = path, answer
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.requests.append(data.decode())
            conn.sendall(self.answer.encode())

    def close(self) -> None:
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A socket path must fit in 108 bytes; pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="mr-"))
    yield path
    for child in path.iterdir():
        child.unlink()
    os.rmdir(path)


def test_uapi_apply_sends_one_set_transaction(short_dir: Path) -> None:
    stand_in = UapiStandIn(str(short_dir / "wg.sock"), "errno=0\n\n")
    try:
        uapi.apply(stand_in.path, None, [PeerOp(A, remove=True)])
    finally:
        stand_in.close()
    assert stand_in.requests == [encode_set(None, [PeerOp(A, remove=True)])]


def test_uapi_apply_raises_when_wireguard_go_refuses(short_dir: Path) -> None:
    stand_in = UapiStandIn(str(short_dir / "wg.sock"), "errno=22\n\n")
    try:
        with pytest.raises(UapiError, match="errno=22"):
            uapi.apply(stand_in.path, None, [PeerOp(A, remove=True)])
    finally:
        stand_in.close()


def test_uapi_get_parses_the_answer(short_dir: Path) -> None:
    stand_in = UapiStandIn(str(short_dir / "wg.sock"), GET_ANSWER)
    try:
        _, peers = uapi.get(stand_in.path)
    finally:
        stand_in.close()
    assert stand_in.requests == ["get=1\n\n"]
    assert [p.public_key for p in peers] == [A, B]


def test_uapi_without_a_socket_is_a_uapi_error(short_dir: Path) -> None:
    with pytest.raises(UapiError, match="UAPI socket"):
        uapi.get(str(short_dir / "missing.sock"))


# -- kernel requests -------------------------------------------------------------------------------


def _decoded(msg: Any) -> Any:
    """A message as the kernel would parse it: encoded, then decoded by pyroute2 again."""
    msg["header"]["type"] = 0x20  # any family id; the layout is what matters
    msg.encode()
    back = wgmsg(msg.data)
    back.decode()
    return back


def _peers(msg: Any) -> list[tuple[str, int, Any, list[str]]]:
    return [
        (
            p.get_attr("WGPEER_A_PUBLIC_KEY").decode(),
            p.get_attr("WGPEER_A_FLAGS"),
            (lambda e: e and (e["addr"], e["port"]))(p.get_attr("WGPEER_A_ENDPOINT")),
            [a["addr"] for a in p.get_attr("WGPEER_A_ALLOWEDIPS") or []],
        )
        for p in msg.get_attr("WGDEVICE_A_PEERS") or []
    ]


def test_kernel_message_carries_settings_and_every_peer_change_in_order() -> None:
    settings = DeviceSettings(generate_private_key(), 51820, 0x1BD00)
    ops = [
        PeerOp(A, recreate=True, endpoint="[2001:db8::a]:51820", allowed_ips=PA.allowed_ips),
        PeerOp(B, remove=True),
        PeerOp(C, endpoint="192.0.2.10:51820"),
    ]
    (msg,) = set_messages("mr0", settings, ops)
    back = _decoded(msg)
    assert back["cmd"] == WG_CMD_SET_DEVICE
    assert back.get_attr("WGDEVICE_A_IFNAME") == "mr0"
    assert back.get_attr("WGDEVICE_A_PRIVATE_KEY").decode() == settings.private_key
    assert (back.get_attr("WGDEVICE_A_LISTEN_PORT"), back.get_attr("WGDEVICE_A_FWMARK")) == (51820, 0x1BD00)
    assert _peers(back) == [
        (A, WGPEER_F_REMOVE_ME, None, []),  # a recreate: removed, then anew, in one message
        (A, WGPEER_F_REPLACE_ALLOWEDIPS, ("2001:db8::a", 51820), ["100.64.0.10/32", "fd00::a/128"]),
        (B, WGPEER_F_REMOVE_ME, None, []),
        (C, 0, ("192.0.2.10", 51820), []),  # AllowedIPs untouched
    ]


def test_kernel_messages_split_large_changes_and_keep_settings_in_the_first() -> None:
    keys = [public_key(generate_private_key()) for _ in range(PEERS_PER_MESSAGE * 2 + 1)]
    ops = [PeerOp(k, endpoint="192.0.2.1:51820", allowed_ips=("100.64.0.1/32",)) for k in keys]
    messages = [_decoded(m) for m in set_messages("mr0", DeviceSettings(generate_private_key(), 1, 0), ops)]
    assert [len(_peers(m)) for m in messages] == [PEERS_PER_MESSAGE, PEERS_PER_MESSAGE, 1]
    assert [m.get_attr("WGDEVICE_A_LISTEN_PORT") for m in messages] == [1, None, None]
    assert [p[0] for m in messages for p in _peers(m)] == keys
    assert len(set_messages("mr0", None, [])) == 1  # nothing to say is still one (empty) message


# -- WireGuardReconciler ---------------------------------------------------------------------------


def test_first_apply_is_one_transaction_that_installs_every_peer() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    ops = run(wg.apply({A: PA, B: PB, C: PC}))
    assert len(device.transactions) == 1
    assert device.transactions[0].ops == tuple(ops) and len(ops) == 3
    assert device.transactions[0].settings is None
    assert device.view() == {A: PA, B: PB, C: PC}
    assert wg.owned == {A: PA, B: PB, C: PC}


def test_nothing_is_sent_when_nothing_changed() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB}))
    assert run(wg.apply({A: PA, B: PB})) == []
    assert len(device.transactions) == 1


def test_a_change_to_one_peer_touches_only_that_peer() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB, C: PC}))
    device.handshake(A, 1000.0)
    device.handshake(C, 1001.0)

    moved_b = PeerConfig(B, PB.allowed_ips, "198.51.100.11:51820")
    ops = run(wg.apply({A: PA, B: moved_b, C: PC}))

    assert ops == [PeerOp(B, endpoint="198.51.100.11:51820")]
    assert len(device.transactions) == 2 and device.transactions[1].ops == (ops[0],)
    assert device.view() == {A: PA, B: moved_b, C: PC}
    # the others kept their sessions: never recreated, handshakes intact
    assert device.creations == {A: 1, B: 1, C: 1}
    assert device.table[A].last_handshake == 1000.0 and device.table[C].last_handshake == 1001.0


def test_removing_one_peer_is_one_transaction_with_one_remove() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB, C: PC}))
    run(wg.apply({A: PA, C: PC}))
    assert device.transactions[1].ops == (PeerOp(B, remove=True),)
    assert set(device.table) == {A, C}


def test_recreate_drops_the_handshake_and_merges_with_a_change_to_the_same_peer() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB}))
    device.handshake(A, 1000.0)
    device.handshake(B, 1000.0)

    new_a = PeerConfig(A, PA.allowed_ips, "198.51.100.10:51820")
    ops = run(wg.apply({A: new_a, B: PB}, recreate=[A]))

    assert ops == [PeerOp(A, recreate=True, endpoint=new_a.endpoint, allowed_ips=new_a.allowed_ips)]
    assert len(device.transactions) == 2
    assert device.view() == {A: new_a, B: PB}
    assert device.creations[A] == 2 and device.table[A].last_handshake is None
    assert device.creations[B] == 1 and device.table[B].last_handshake == 1000.0


def test_recreate_alone_is_sent_even_when_nothing_else_changed() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB}))
    ops = run(wg.apply({A: PA, B: PB}, recreate=[B]))
    assert ops == [PeerOp(B, recreate=True, endpoint=PB.endpoint, allowed_ips=PB.allowed_ips)]
    assert device.view() == {A: PA, B: PB}


def test_recreate_of_a_peer_that_is_not_wanted_is_ignored() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB}))
    ops = run(wg.apply({A: PA}, recreate=[B]))
    assert ops == [PeerOp(B, remove=True)]
    assert set(device.table) == {A}


def test_a_failed_transaction_is_retried_in_full_next_time() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA}))
    device.fail_next = RuntimeError("UAPI socket gone")
    with pytest.raises(RuntimeError):
        run(wg.apply({A: PA, B: PB}))
    assert set(device.table) == {A}
    ops = run(wg.apply({A: PA, B: PB}))
    assert ops == [PeerOp(B, endpoint=PB.endpoint, allowed_ips=PB.allowed_ips)]
    assert device.view() == {A: PA, B: PB}


def test_an_allowed_ip_moving_between_peers_ends_up_on_the_new_peer_only() -> None:
    device = FakeDevice()
    wg = WireGuardReconciler(device)
    run(wg.apply({A: PA, B: PB}))
    # the overlay IP of B now belongs to a new peer C (B left, C joined with B's old address)
    new_c = PeerConfig(C, PB.allowed_ips, PC.endpoint)
    run(wg.apply({A: PA, C: new_c}))
    assert device.view() == {A: PA, C: new_c}
    assert len(device.transactions) == 2


# -- AddressReconciler -----------------------------------------------------------------------------


def test_address_reconciler_adds_and_removes_only_the_difference() -> None:
    netlink = FakeNetlink(links=["mr0"])
    addresses = AddressReconciler(netlink, "mr0")
    assert run(addresses.apply({"100.64.0.1/16", "fd00::1/64"})) == (["100.64.0.1/16", "fd00::1/64"], [])
    assert netlink.addresses["mr0"] == {"100.64.0.1/16", "fd00::1/64"}

    netlink.calls.clear()
    assert run(addresses.apply({"100.64.0.1/16", "fd00::1/64"})) == ([], [])
    assert netlink.calls == []

    assert run(addresses.apply({"100.64.0.1/16"})) == ([], ["fd00::1/64"])
    assert netlink.calls == [("remove_address", "mr0", "fd00::1/64")]
    assert netlink.addresses["mr0"] == {"100.64.0.1/16"}
    assert addresses.owned == {"100.64.0.1/16"}


def test_address_reconciler_removes_before_it_adds() -> None:
    netlink = FakeNetlink(links=["mr0"])
    addresses = AddressReconciler(netlink, "mr0")
    run(addresses.apply({"100.64.0.1/16"}))
    netlink.calls.clear()
    run(addresses.apply({"100.64.0.9/16"}))
    assert netlink.calls == [
        ("remove_address", "mr0", "100.64.0.1/16"),
        ("add_address", "mr0", "100.64.0.9/16"),
    ]
    assert netlink.addresses["mr0"] == {"100.64.0.9/16"}


def test_address_reconciler_owns_only_what_it_managed_to_add() -> None:
    netlink = FakeNetlink()  # no interface: adding fails
    addresses = AddressReconciler(netlink, "mr0")
    with pytest.raises(Exception, match="no interface"):
        run(addresses.apply({"100.64.0.1/16"}))
    assert addresses.owned == set()
