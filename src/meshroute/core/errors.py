"""Typed errors, defined once and free of any transport: each transport maps them to its own
codes in one table (HTTP: `server.api.errors`, gRPC: `server.sync.errors`)."""

from __future__ import annotations


class MeshrouteError(Exception):
    """Base of every domain error. `message` is what the user sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MeshrouteError):
    """The request names or holds something that breaks a rule (a value out of range, a group
    that does not exist)."""


class BadRequest(MeshrouteError):
    """The request cannot be understood (unparsable body), or an action the reference refuses
    as a bad request (deleting a group still in use)."""


class Unauthorized(MeshrouteError):
    """The caller could not be authenticated."""


class PermissionDenied(MeshrouteError):
    """The caller is known but may not do this."""


class NotFound(MeshrouteError):
    pass


class AlreadyExists(MeshrouteError):
    pass


class PreconditionFailed(MeshrouteError):
    """The request is fine but the state does not allow it now (the routing peer of a route)."""


class Internal(MeshrouteError):
    pass


class TooManyRequests(MeshrouteError):
    """Too many failed attempts from one source; `retry_after` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
