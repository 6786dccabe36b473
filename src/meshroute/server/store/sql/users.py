"""Users and their personal access tokens in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update

from meshroute.core.model import PersonalAccessToken, User
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import TOKENS, USERS
from meshroute.server.store.sql.common import SqlRepository

_pat = t.personal_access_tokens


class SqlUsers(SqlRepository):
    def get(self, user_id: str) -> User | None:
        row = self.conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return USERS.load(row) if row else None

    def all(self, account_id: str) -> list[User]:
        rows = self.conn.execute(
            select(t.users)
            .where(t.users.c.account_id == account_id)
            .order_by(t.users.c.created_at, t.users.c.id)
        )
        return [USERS.load(r) for r in rows]

    def add(self, user: User) -> None:
        self.conn.execute(insert(t.users).values(**USERS.dump(user)))

    def update(self, user: User) -> None:
        self.conn.execute(
            update(t.users)
            .where(t.users.c.id == user.id)
            .values(
                role=user.role.value, blocked=user.blocked, auto_groups=list(user.auto_groups), name=user.name
            )
        )

    def delete(self, user_id: str) -> None:
        self.conn.execute(delete(_pat).where(_pat.c.user_id == user_id))
        self.conn.execute(delete(t.users).where(t.users.c.id == user_id))


class SqlTokens(SqlRepository):
    def by_hash(self, hashed: str) -> PersonalAccessToken | None:
        row = self.conn.execute(select(_pat).where(_pat.c.hashed_token == hashed)).first()
        return TOKENS.load(row) if row else None

    def all(self, user_id: str) -> list[PersonalAccessToken]:
        rows = self.conn.execute(
            select(_pat).where(_pat.c.user_id == user_id).order_by(_pat.c.created_at, _pat.c.id)
        )
        return [TOKENS.load(r) for r in rows]

    def add(self, token: PersonalAccessToken) -> None:
        self.conn.execute(insert(_pat).values(**TOKENS.dump(token)))

    def delete(self, token_id: str) -> None:
        self.conn.execute(delete(_pat).where(_pat.c.id == token_id))

    def touch(self, token_id: str, when: datetime) -> None:
        self.conn.execute(update(_pat).where(_pat.c.id == token_id).values(last_used=when))
