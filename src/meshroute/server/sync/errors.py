"""The one table from typed errors to gRPC status codes, for the agent protocol."""

from __future__ import annotations

import grpc

from meshroute.core import errors as e

GRPC_STATUS: dict[type[e.MeshrouteError], grpc.StatusCode] = {
    e.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    e.TooManyRequests: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def grpc_status(exc: e.MeshrouteError) -> grpc.StatusCode:
    """The code of the nearest mapped class of `exc` (INTERNAL for an unmapped one)."""
    return next((GRPC_STATUS[k] for k in type(exc).__mro__ if k in GRPC_STATUS), grpc.StatusCode.INTERNAL)
