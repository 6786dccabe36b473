"""The agent's settings, as `meshroute agent run` takes them."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/meshroute")
DEFAULT_INTERFACE = "mr0"
DEFAULT_PORT = 51820
DEFAULT_MTU = 1280
BACKENDS = ("auto", "kernel", "userspace")


@dataclass(slots=True)
class AgentConfig:
    server: str
    state_dir: Path = DEFAULT_STATE_DIR
    setup_key: str = ""
    interface: str = DEFAULT_INTERFACE
    listen_port: int = DEFAULT_PORT
    endpoints: tuple[str, ...] = ()  # extra candidates reported to the others, IP:PORT
    hostname: str = field(default_factory=socket.gethostname)
    wireguard: str = "auto"
    tls: bool = False
    ca: Path | None = None
    insecure: bool = False
    probe_interval: float = 0.2  # seconds
    probe_down_after: int = 3
    mtu: int = DEFAULT_MTU
    wireguard_go: str = "wireguard-go"
    wireguard_verbose: bool = False
    dns_grace: float = 60.0  # seconds a learned address outlives its DNS TTL (domain routes)
    dns_cap: int = 4096  # learned addresses per domain route
    reconnect_cap: float = 10.0  # seconds, the longest wait between two attempts to reach management
