"""Name servers inside a world's nodes: an authoritative-only dnsmasq per zone (Debian's
dnsmasq-base), logging every query to its log file so tests and users can see who asked what.
The lab's office LAN serves `office.test` with it; the domain-route tests start their own."""

from __future__ import annotations

from meshroute.lab.process import Proc
from meshroute.lab.world import World


def dnsmasq_argv(listen: str, zone: str, *records: str) -> list[str]:
    """An authoritative-only dnsmasq for ``zone`` on listen:53 that logs every query to its output
    (``--host-record=NAME,ADDRESS[,TTL]``, ``--cname=...``, ``--local-ttl=...`` as ``records``)."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--listen-address={listen}",
        "--bind-interfaces",
        "--port=53",
        "--user=root",
        "--pid-file=",
        f"--local=/{zone}/",
        "--log-queries",
        "--log-facility=-",
        *records,
    ]


def start_dnsmasq(net: World, node: str, listen: str, zone: str, *records: str, name: str) -> Proc:
    """Start dnsmasq in ``node`` (log WORKDIR/NODE/NAME.log) and wait until it serves."""
    proc = net.popen(node, dnsmasq_argv(listen, zone, *records), name=name)
    wait_dnsmasq(net, proc)
    return proc


def wait_dnsmasq(net: World, proc: Proc) -> None:
    """Wait until the current run of a dnsmasq serves (its log since the last start header)."""

    def started() -> bool:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
        return "started, version" in text.rpartition("--- start #")[2] or not proc.running

    net.wait_for(started, timeout=10, message=f"{proc.name} did not start\n{proc.tail()}")
    if not proc.running:
        raise RuntimeError(f"{proc.name} stopped at once\n{proc.tail()}")
