"""Files the server keeps secret: the owner's token and, on SQLite, the whole store.

Both live in the data directory, which is kept owner-only (0700) with owner-only files (0600)
in it, whatever mode an older version or an administrator left them with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def write_secret(path: Path, secret: str) -> None:
    """Readable by the owner only from the first byte on, and replaced in one step: the secret
    goes into a new 0600 file beside `path` (mkstemp) that is then renamed over it. Writing into
    an existing file instead would keep that file's mode (0644, say) and show the secret to
    anyone who has it open or reads it before a chmod."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if not current & 0o077:
        return
    try:
        os.chmod(path, mode)
    except PermissionError:
        raise ValueError(
            f"{path} is open to other users (mode {current:o}) and this user cannot change that: "
            f"make it {mode:o} or give the server a data directory of its own"
        ) from None
    log.warning("%s was open to other users (mode %o): changed to %o", path, current, mode)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store URL (None for other stores and in-memory databases)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def secure_storage(data_dir: Path, url: str, secrets: tuple[str, ...] = ()) -> None:
    """The data directory 0700; the `secrets` files in it, a SQLite store and its companions
    0600. A store that does not exist yet is created empty with 0600 first: SQLite gives the WAL
    and shared-memory files it creates later the mode of the database file."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(data_dir, 0o700)
    for name in secrets:
        if (data_dir / name).exists():
            _tighten(data_dir / name, 0o600)
    store = sqlite_file(url)
    if store is None:
        return
    if not store.exists():
        os.close(os.open(store, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (store, *(store.with_name(store.name + s) for s in SQLITE_COMPANIONS)):
        if path.exists():
            _tighten(path, 0o600)
