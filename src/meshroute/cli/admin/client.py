"""HTTP side of the admin CLI: a small synchronous client for the NetBird-compatible REST API.

The client speaks JSON, authenticates with ``Authorization: Token <PAT>`` and turns every failure
(HTTP error status, connection problem, unusable reply) into :class:`CliError`, whose text is what the
user sees after ``error:``. For HTTP errors that text is the server's own ``message``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:33073"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "meshroute-cli"

JSONObject = dict[str, Any]


class CliError(Exception):
    """A failure to report to the user as ``error: <message>`` (exit status 1)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UnknownName(CliError):
    """A group/peer/... reference that is neither the ID nor the name of anything the server knows."""


def normalise_server(server: str) -> str:
    """Turn what the user typed into a base URL: add ``http://`` if needed, drop a trailing ``/api``."""
    base = server.strip()
    if not base:
        raise CliError("no server given: pass --server or set MESHROUTE_SERVER")
    if "://" not in base:
        base = "http://" + base
    base = base.rstrip("/")
    if base.endswith("/api"):
        base = base[: -len("/api")]
    return base


def error_message(response: httpx.Response) -> str:
    """The server's explanation of an error response (NetBird body: ``{"message": ..., "code": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
        detail = body.get("detail")  # a framework-level error rather than an API one
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list) and detail:
            parts = [str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail]
            return "; ".join(parts)
    text = response.text.strip()
    if text and len(text) <= 500:
        return f"{response.status_code} {response.reason_phrase}: {text}"
    return f"{response.status_code} {response.reason_phrase}"


class AdminClient:
    """Synchronous client for ``/api/...``; one instance per command invocation."""

    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if token is None or not token.strip():
            raise CliError(
                "no API token: pass --token or set MESHROUTE_TOKEN "
                "(the server writes the owner's token to <data-dir>/admin-token on first start)"
            )
        self.base_url = normalise_server(server)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Token {token.strip()}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            transport=transport,
        )
        self._cache: dict[str, list[JSONObject]] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- raw requests ----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Send one request to ``/api/<path>`` and return the decoded JSON reply."""
        url = "/api/" + path.lstrip("/")
        try:
            if body is None:
                response = self._http.request(method, url, params=params)
            else:
                response = self._http.request(method, url, params=params, json=body)
        except httpx.ConnectError as exc:
            raise CliError(f"cannot connect to {self.base_url}: {_reason(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"request to {self.base_url} timed out ({method} {url})") from exc
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.base_url} failed: {_reason(exc)}") from exc
        if response.is_error:
            raise CliError(error_message(response), status=response.status_code)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"unexpected reply from {self.base_url} ({method} {url}): not JSON "
                f"(status {response.status_code})"
            ) from exc

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        self._cache.clear()
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> Any:
        self._cache.clear()
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        self._cache.clear()
        return self.request("DELETE", path)

    # -- typed helpers ---------------------------------------------------------------------------
    def get_object(self, path: str) -> JSONObject:
        data = self.get(path)
        if not isinstance(data, dict):
            raise CliError(f"unexpected reply from {self.base_url} (GET /api/{path}): expected an object")
        return data

    def get_list(self, path: str, params: dict[str, str] | None = None) -> list[JSONObject]:
        data = self.get(path, params)
        if data is None:
            return []
        if not isinstance(data, list):
            raise CliError(f"unexpected reply from {self.base_url} (GET /api/{path}): expected a list")
        return [item for item in data if isinstance(item, dict)]

    def cached_list(self, path: str) -> list[JSONObject]:
        """``GET /api/<path>`` once per invocation (used for name look-ups and for display)."""
        if path not in self._cache:
            self._cache[path] = self.get_list(path)
        return self._cache[path]

    def try_cached_list(self, path: str) -> list[JSONObject]:
        """Like :meth:`cached_list` but an empty list when the caller may not read it (display only)."""
        try:
            return self.cached_list(path)
        except CliError:
            self._cache[path] = []
            return []

    # -- references -> IDs ------------------------------------------------------------------------
    def resolve(self, kind: Kind, ref: str, collection: str | None = None) -> str:
        """The ID of the one item of ``kind`` that ``ref`` names (its ID, or a label such as its name).

        :class:`UnknownName` when nothing matches; :class:`CliError` listing the candidates when
        ``ref`` names several items.
        """
        return kind.pick(self.cached_list(collection or kind.collection), ref, self)

    def resolve_target(self, kind: Kind, ref: str, collection: str | None = None) -> str:
        """Like :meth:`resolve`, for the object a command acts on; when the caller may not list the
        collection, ``ref`` is used as an ID and the server judges it."""
        try:
            items = self.cached_list(collection or kind.collection)
        except CliError:
            return ref
        return kind.pick(items, ref, self)

    def resolve_groups(self, refs: Iterable[str]) -> list[str]:
        return _dedupe(self.resolve(GROUP, ref) for ref in refs)

    def resolve_peer(self, ref: str) -> str:
        return self.resolve(PEER, ref)

    def resolve_peers(self, refs: Iterable[str]) -> list[str]:
        return _dedupe(self.resolve(PEER, ref) for ref in refs)

    # -- display helpers -------------------------------------------------------------------------
    def group_names(self) -> dict[str, str]:
        return self._names("groups")

    def peer_names(self) -> dict[str, str]:
        return self._names("peers")

    def _names(self, collection: str) -> dict[str, str]:
        """ID -> name of the items of ``/api/<collection>`` (none when the caller may not read them)."""
        return {str(i.get("id", "")): str(i.get("name", "")) for i in self.try_cached_list(collection)}


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


def _name_keys(item: JSONObject) -> list[str]:
    """Labels a user may name an item by; the first one is its name."""
    name = item.get("name")
    return [name if isinstance(name, str) else ""]


def _peer_keys(item: JSONObject) -> list[str]:
    keys = _name_keys(item)
    for key in ("ip", "dns_label", "hostname"):
        value = item.get(key)
        if isinstance(value, str) and value:
            keys.append(value)
    return keys


def _user_keys(item: JSONObject) -> list[str]:
    keys = _name_keys(item)
    email = item.get("email")
    if isinstance(email, str) and email:
        keys.append(email)
    return keys


def _route_keys(item: JSONObject) -> list[str]:
    net_id = item.get("network_id")
    return [net_id if isinstance(net_id, str) else ""]


Describe = Callable[[JSONObject, "AdminClient"], str]


def _describe_named(item: JSONObject, _client: AdminClient) -> str:
    return str(item.get("name", ""))


def _describe_route(item: JSONObject, client: AdminClient) -> str:
    """``<destination> via <routing peer(s)>`` in names: which of several same-NetID routes is which."""
    domains = item.get("domains")
    where = ", ".join(map(str, domains)) if isinstance(domains, list) and domains else item.get("network", "")
    peer_groups = [str(g) for g in item.get("peer_groups") or []]
    if peer_groups:
        names = client.group_names()
        via = "peer groups " + ", ".join(names.get(g) or g for g in peer_groups)
    else:
        peer = str(item.get("peer") or "")
        via = client.peer_names().get(peer) or peer
    return f"{where} via {via}"


@dataclass(frozen=True)
class Kind:
    """A collection of the API whose items commands refer to by ID or by a label (name, NetID...)."""

    name: str  # "route", in messages
    collection: str  # /api/<collection>
    label: str  # what else than the ID a reference may be: "name", "network ID"
    keys: Callable[[JSONObject], list[str]]  # labels of an item; the first is the main one
    describe: Describe = _describe_named  # tells items apart when a label is ambiguous

    def pick(self, items: list[JSONObject], ref: str, client: AdminClient) -> str:
        """The ID of the item ``ref`` refers to: its ID, else its label (exact, then case-insensitive)."""
        for item in items:
            if str(item.get("id", "")) == ref:
                return ref
        folded = ref.casefold()
        tiers: list[Callable[[JSONObject], bool]] = [
            lambda item: ref in self.keys(item)[:1],
            lambda item: ref in self.keys(item),
            lambda item: folded in (key.casefold() for key in self.keys(item)),
        ]
        found: list[JSONObject] = []
        for matches in tiers:
            found = [item for item in items if matches(item)]
            if found:
                break
        if not found:
            raise UnknownName(f"no {self.name} {ref!r}")
        if len(found) == 1:
            return str(found[0].get("id", ""))
        lines = [f"  {item.get('id', '')}  {self.describe(item, client)}" for item in found]
        raise CliError(
            f"{self.label} {ref!r} names {len(found)} {self.name}s; "
            "give one of their IDs:\n" + "\n".join(lines)
        )


GROUP = Kind("group", "groups", "name", _name_keys)
PEER = Kind("peer", "peers", "name", _peer_keys)
SETUP_KEY = Kind("setup key", "setup-keys", "name", _name_keys)
ROUTE = Kind("route", "routes", "network ID", _route_keys, _describe_route)
USER = Kind("user", "users", "name", _user_keys)
TOKEN = Kind("token", "tokens", "name", _name_keys)  # under users/<id>/tokens


@contextmanager
def connect(server: str, token: str | None) -> Iterator[AdminClient]:
    """Open a client for one command; closes it afterwards."""
    client = AdminClient(server, token)
    try:
        yield client
    finally:
        client.close()
