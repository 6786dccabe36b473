"""The local control socket: `STATE_DIR/agent.sock`, root only. One JSON request per line, one
JSON answer per line. `meshroute agent status` is its client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_FILE = "agent.sock"
_MAX_REQUEST = 4096
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path, minus the terminating NUL


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """A path to `path` that fits in sockaddr_un: long state-dir paths go through an O_PATH
    descriptor of the directory (/proc/self/fd/N/agent.sock resolves to the same file)."""
    if len(str(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    def __init__(self, state_dir: Path, handlers: dict[str, Callable[..., Any]]) -> None:
        self.path = state_dir / SOCKET_FILE
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)  # a stale socket of a run that did not stop cleanly
        old = os.umask(0o177)  # 0600 from the start: no window in which others may connect
        try:
            with _short_path(self.path) as path:
                self._server = await asyncio.start_unix_server(self._serve, path=path)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
                answer = await self._handle(line[:_MAX_REQUEST])
            except ValueError:  # a line past the stream limit
                answer = {"error": "request too long"}
            try:
                data = json.dumps(answer).encode()
            except (TypeError, ValueError) as exc:
                data = json.dumps({"error": f"the answer could not be encoded: {exc}"}).encode()
            writer.write(data + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = str(request.get("command", ""))
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError
        except (ValueError, AttributeError):
            return {"error": "expected a JSON object with a command (and an object of args)"}
        handler = self.handlers.get(command)
        if handler is None:
            return {"error": f"unknown command {command!r}; known: {', '.join(sorted(self.handlers))}"}
        try:
            result = handler(**args)
            if inspect.isawaitable(result):  # a command that changes something answers once done
                result = await result
            return {"result": result}
        except CommandError as exc:  # the request was understood and refused
            return {"error": str(exc)}
        except TypeError as exc:
            return {"error": f"{command}: bad arguments ({exc})"}
        except Exception as exc:  # the agent keeps running; the caller learns what failed
            log.exception("control command %s failed", command)
            return {"error": f"{command} failed: {exc}"}


class ControlError(Exception):
    pass


class CommandError(Exception):
    """A handler's refusal, sent to the client as the error (no traceback logged)."""


def call(state_dir: Path, command: str, timeout: float = 5.0, **args: Any) -> Any:
    """The client side, for the CLI."""
    path = state_dir / SOCKET_FILE
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _short_path(path) as short:
                sock.connect(short)
            sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise ControlError(f"no agent is running with state dir {state_dir} (no {path})") from None
        except ConnectionRefusedError:
            raise ControlError(f"the agent of {state_dir} is not running (stale {path})") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied (run as root)") from None
        except OSError as exc:
            raise ControlError(f"{path}: {exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError("the agent sent no answer") from None
    if "error" in answer:
        raise ControlError(str(answer["error"]))
    return answer["result"]
