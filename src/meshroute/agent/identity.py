"""The agent's identity: its WireGuard key pair and the credential the server gave it.

Stored in the state directory, readable by root only, so that a restart logs in with the
credential and never needs the setup key again.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

IDENTITY_FILE = "identity.json"


def generate_private_key() -> str:
    """A WireGuard private key, base64 as `wg genkey` prints it (clamped the same way)."""
    raw = bytearray(os.urandom(32))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def public_key(private_key: str) -> str:
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_key))
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(slots=True)
class StoredIdentity:
    private_key: str
    peer_id: str = ""
    credential: str = ""
    server: str = ""  # the management address it registered with (for `agent status`)
    public_key: str = field(default="", compare=False)  # derived, kept for people reading the file

    def __post_init__(self) -> None:
        self.public_key = public_key(self.private_key)

    @property
    def registered(self) -> bool:
        return bool(self.peer_id and self.credential)


class IdentityStore(Protocol):
    def load(self) -> StoredIdentity | None: ...

    def save(self, identity: StoredIdentity) -> None: ...


class MemoryIdentityStore:
    """For `meshroute sim` and tests: nothing on disk."""

    def __init__(self, identity: StoredIdentity | None = None) -> None:
        self.identity = identity

    def load(self) -> StoredIdentity | None:
        return self.identity

    def save(self, identity: StoredIdentity) -> None:
        self.identity = identity


class IdentityError(Exception):
    pass


class FileIdentityStore:
    """`STATE_DIR/identity.json`, mode 0600, replaced atomically (never half written)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / IDENTITY_FILE

    def load(self) -> StoredIdentity | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read {self.path}: {exc}") from None
        try:
            identity = StoredIdentity(
                private_key=str(data["private_key"]),
                peer_id=str(data.get("peer_id", "")),
                credential=str(data.get("credential", "")),
                server=str(data.get("server", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityError(f"{self.path} is damaged ({exc}); move it away to register anew") from None
        return identity

    def save(self, identity: StoredIdentity) -> None:
        write_private(self.path, json.dumps(asdict(identity), indent=2) + "\n")


def write_private(path: Path, text: str) -> None:
    """Create with 0600 from the first byte, then rename over the old file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
