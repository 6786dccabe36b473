"""nftables through the `nft` program (system boundary): one process per change, JSON in and out.

Each change is one `nft -j -f -` run, which the kernel applies as one transaction: either all of it
or none of it, so a document that fails leaves the previous ruleset in place. Measured on the 2-vCPU
test VM (tests/e2e/test_firewall.py::test_apply_cost): about 15 ms to replace the table with one route,
about 28 ms with 50 routes of 20 sources each. Starting `nft` and adding a whole table costs 2-5 ms;
most of the rest is the kernel unregistering the old table's base-chain hooks (an RCU grace period),
which a plain add, or a flush and refill of the same chains, does not wait for. A routing peer's
ruleset changes only when its served routes or their sources do, never on a failover, so the simple
replace is kept. Only tables named by the caller are listed or deleted.

A DNS answer on a routing peer that teaches a domain route new addresses is one more `apply`, of
`ruleset.add_elements`: about 3 ms to add elements to the table's sets, about 16 ms when elements
already there get a new timeout (the delete waits for an RCU grace period), measured the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from meshroute.agent.firewall.ruleset import DEFAULT_TABLE, FAMILY

log = logging.getLogger(__name__)

NFT_TIMEOUT_S = 15.0


class NftError(Exception):
    """`nft` failed or cannot run; the message carries what nft said."""


class NftOps(Protocol):
    """What the agent needs of nftables (the real `Nftables`, or a fake in unit tests)."""

    async def apply(self, document: dict[str, Any]) -> None: ...

    async def remove(self, table: str = DEFAULT_TABLE, family: str = FAMILY) -> bool: ...

    async def exists(self, table: str, family: str = FAMILY) -> bool: ...

    async def list_ruleset(self) -> dict[str, Any]: ...


class Nftables:
    def __init__(self, binary: str = "nft", *, timeout: float = NFT_TIMEOUT_S) -> None:
        self.binary = binary
        self.timeout = timeout

    async def apply(self, document: dict[str, Any]) -> None:
        """One atomic transaction; NftError with nft's message if the kernel or nft refuses it."""
        await self._run(["-j", "-f", "-"], json.dumps(document))

    async def check(self, document: dict[str, Any]) -> None:
        """Let nft and the kernel validate a document without applying it (`nft --check`)."""
        await self._run(["--check", "-j", "-f", "-"], json.dumps(document))

    async def remove(self, table: str = DEFAULT_TABLE, family: str = FAMILY) -> bool:
        """Delete one table; False if it was not there (already done)."""
        if not await self.exists(table, family):
            return False
        try:
            await self._run(["-j", "-f", "-"], json.dumps(_delete(table, family)))
        except NftError:
            if await self.exists(table, family):
                raise
            return False  # removed by someone else in between
        return True

    async def exists(self, table: str, family: str = FAMILY) -> bool:
        listing = json.loads(await self._run(["-j", "list", "tables"]) or "{}")
        return any(
            obj.get("table", {}).get("name") == table and obj["table"].get("family") == family
            for obj in listing.get("nftables", [])
        )

    async def list_ruleset(self) -> dict[str, Any]:
        """Everything, as nft's JSON (`nft -j list ruleset`)."""
        data = json.loads(await self._run(["-j", "list", "ruleset"]) or "{}")
        if not isinstance(data, dict):
            raise NftError(f"{self.binary} -j list ruleset: unexpected output")
        return data

    async def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        argv = [self.binary, *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise NftError(f"cannot run {self.binary}: {exc} (apt install nftables)") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NftError(f"{' '.join(argv)} did not finish within {self.timeout:.0f} s") from None
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
            raise NftError(f"{' '.join(argv)} failed (exit {proc.returncode}): {message}")
        return out.decode()


def _delete(table: str, family: str) -> dict[str, Any]:
    return {"nftables": [{"delete": {"table": {"family": family, "name": table}}}]}
