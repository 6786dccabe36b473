"""What the agent installed, recorded in the state directory before and after each install, so a
start after a crash (SIGKILL, power loss) can remove leftovers before anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshroute.agent.identity import write_private

LEDGER_FILE = "installed.json"


class Ledger:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LEDGER_FILE
        self.sections: dict[str, dict[str, Any]] = {}

    def load(self) -> dict[str, dict[str, Any]]:
        """What an earlier run left recorded (it did not get to clean up)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A torn write cannot happen (atomic replace); anything else is not ours to guess at.
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}

    def record(self, section: str, data: dict[str, Any]) -> None:
        self.sections[section] = data
        self._save()

    def drop(self, section: str) -> None:
        if self.sections.pop(section, None) is not None:
            self._save()

    def _save(self) -> None:
        if self.sections:
            write_private(self.path, json.dumps(self.sections, indent=2, sort_keys=True) + "\n")
        else:
            self.path.unlink(missing_ok=True)
