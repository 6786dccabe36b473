"""Dashboard sessions: a personal access token exchanged for a server-side session.

The browser holds only a random session secret (in an HttpOnly cookie); the store keeps its hash,
the user, the token it was opened with and the session's form (CSRF) token. A session ends at
sign-out, after `IDLE_TIMEOUT` without a request, after `LIFETIME`, when its token expires or is
deleted, and when its user is deleted; a blocked user's session is refused. The token itself is
checked once, at sign-in, exactly as the REST API checks it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from meshroute.core.errors import Unauthorized
from meshroute.core.model import User, WebSession
from meshroute.core.tokens import hash_secret
from meshroute.server.clock import utcnow
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.services.users import UserService

LIFETIME = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=2)
TOUCH_EVERY = timedelta(minutes=1)  # how stale `last_seen` may get (one write a minute at most)
SECRET_BYTES = 32
MAX_SECRET_CHARS = 64  # a longer cookie is no session of ours: refused before hashing
ENDED = "your session has ended: sign in again"


@dataclass(frozen=True, slots=True)
class SignedIn:
    secret: str  # for the cookie only: never stored, logged or shown
    session: WebSession
    user: User


class SessionService:
    def __init__(self, uow: UnitOfWork, users: UserService) -> None:
        self.uow = uow
        self.users = users

    def sign_in(self, token: str) -> SignedIn:
        """Unauthorized / PermissionDenied as the REST API answers the same token."""
        user, pat = self.users.authenticate_token(token.strip())
        now = utcnow()
        secret = secrets.token_urlsafe(SECRET_BYTES)
        session = WebSession(
            id_hash=hash_secret(secret),
            account_id=user.account_id,
            user_id=user.id,
            token_id=pat.id,
            csrf=secrets.token_urlsafe(SECRET_BYTES),
            created_at=now,
            last_seen=now,
            expires_at=min(now + LIFETIME, pat.expiration_date),
        )
        with self.uow.write_unlocked() as tx:
            tx.web_sessions.delete_expired(now, now - IDLE_TIMEOUT)
            tx.web_sessions.add(session)
        return SignedIn(secret, session, user)

    def resolve(self, secret: str) -> tuple[WebSession, User]:
        """The live session of a cookie's value and its user, as they are now (a changed role
        counts at once); Unauthorized when there is none."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            raise Unauthorized(ENDED)
        id_hash = hash_secret(secret)
        with self.uow.read() as tx:
            session = tx.web_sessions.get(id_hash)
            user = tx.users.get(session.user_id) if session is not None else None
        now = utcnow()
        if (
            session is None
            or user is None
            or user.account_id != session.account_id
            or user.blocked
            or session.expires_at <= now
            or now - session.last_seen > IDLE_TIMEOUT
        ):
            raise Unauthorized(ENDED)
        if now - session.last_seen > TOUCH_EVERY:
            with self.uow.write_unlocked() as tx:
                tx.web_sessions.touch(id_hash, now)
        return session, user

    def sign_out(self, secret: str) -> None:
        if secret and len(secret) <= MAX_SECRET_CHARS:
            with self.uow.write_unlocked() as tx:
                tx.web_sessions.delete(hash_secret(secret))
