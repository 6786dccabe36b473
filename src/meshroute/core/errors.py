"""Typed errors, defined once; the API maps each kind to an HTTP status in one place."""

from __future__ import annotations


class MeshrouteError(Exception):
    """Base of every domain error. `message` is what the user sees."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MeshrouteError):
    status = 422


class BadRequest(MeshrouteError):
    status = 400


class Unauthorized(MeshrouteError):
    status = 401


class PermissionDenied(MeshrouteError):
    status = 403


class NotFound(MeshrouteError):
    status = 404


class AlreadyExists(MeshrouteError):
    status = 409


class PreconditionFailed(MeshrouteError):
    status = 412


class Internal(MeshrouteError):
    status = 500
