"""The shell and JSON examples of README.md and docs/ run as written (issue 11, item 12).

Every ```sh block is run with bash against a real server (its own data directory and free ports;
the documented default addresses 127.0.0.1:33073/33074 are pointed at it), in the order of its
document, from a directory that looks like a checkout (`data/admin-token`, `.venv/bin/meshroute`).
A block that cannot run here (it needs root, a database host, a running agent, or minutes) says so
in the document with `<!-- docs-test: skip: <why> -->` on the line before it; it is still checked
for syntax. Every ```json block must be JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.server_process import clean_env, server_process

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip:\s*(.*?)\s*-->\s*$")
SHELLS = ("sh", "bash", "shell")


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None  # why it is not run

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    found: list[Block] = []
    lines = document.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or not fence.group(1):
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        before = lines[start - 1] if start else ""
        skip = SKIP.match(before)
        found.append(
            Block(document, start + 1, fence.group(1), "\n".join(body) + "\n", skip and skip.group(1))
        )
    return found


ALL = [b for doc in DOCUMENTS for b in blocks(doc)]
SHELL = [b for b in ALL if b.lang in SHELLS]


def test_the_documents_have_examples_and_say_why_a_skipped_one_is_skipped() -> None:
    assert len(SHELL) >= 8 and any(b.lang == "json" for b in ALL)
    assert [b for b in SHELL if b.skip is None], "no example runs"
    for doc in DOCUMENTS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if "docs-test" in line:
                skip = SKIP.match(line)
                assert skip and len(skip.group(1)) >= 10, f"{doc.name}:{number}: say why: {line}"


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.where)
def test_shell_examples_are_valid_shell_without_comments_after_continuations(block: Block) -> None:
    for number, line in enumerate(block.text.splitlines(), block.line + 1):
        # `cmd \  # comment` ends the command at the comment: the next line runs on its own
        assert not re.search(r"\\\s+#", line), f"{block.where}: comment after a `\\` at line {number}"
        assert not re.search(r"\\\s+$", line), f"{block.where}: blank after a `\\` at line {number}"
    checked = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"{block.where}: {checked.stderr}"


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "json"], ids=lambda b: b.where)
def test_json_examples_are_json(block: Block) -> None:
    json.loads(block.text)


def _checkout(workdir: Path) -> None:
    """`.venv/bin/meshroute` and `.venv/bin/python` as a checkout has them, for this interpreter;
    `.venv/bin` comes first on the PATH."""
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "meshroute").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m meshroute.cli.main "$@"\n')
    (bin_dir / "meshroute").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    # An HTTP error fails the example even where it does not ask curl to (a 400 exits 0 otherwise).
    curl = shutil.which("curl")
    assert curl, "the examples use curl (scripts/install.sh installs it)"
    (bin_dir / "curl").write_text(f'#!/bin/sh\nexec "{curl}" --fail-with-body "$@"\n')
    (bin_dir / "curl").chmod(0o755)


RUNNABLE = sorted({b.document for b in SHELL if b.skip is None})


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda d: str(d.relative_to(REPO)))
def test_examples_run_as_written_against_a_real_server(document: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    _checkout(workdir)
    with server_process(workdir / "data", log_level="warning") as server:
        host_port = server.url.removeprefix("http://")
        env = clean_env(MESHROUTE_SERVER=server.url)
        env["PATH"] = f"{workdir / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # One shell for the whole document, as a reader pastes its blocks into one terminal.
        parts = []
        for block in (b for b in blocks(document) if b.lang in SHELLS and b.skip is None):
            parts += [f"echo '== {block.where}' >&2", block.text]
        script = (
            "\n".join(parts).replace("127.0.0.1:33073", host_port).replace("127.0.0.1:33074", server.sync)
        )
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (
            f"failed (the last == line says in which block):\n{done.stdout}\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr and "error:" not in done.stderr, done.stderr
