"""Relational schema. Alembic migrations under `migrations/` must match this module."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC everywhere, hands back aware UTC (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("domain", String(255), nullable=False),
    Column("network_v4", String(64), nullable=False),
    Column("network_v6", String(64), nullable=False),
    Column("network_serial", BigInteger, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("peer_login_expiration_enabled", Boolean, nullable=False, default=False),
    Column("peer_login_expiration", Integer, nullable=False, default=86400),
    Column("peer_inactivity_expiration_enabled", Boolean, nullable=False, default=False),
    Column("peer_inactivity_expiration", Integer, nullable=False, default=600),
    Column("regular_users_view_blocked", Boolean, nullable=False, default=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(255), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("role", String(32), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("email", String(255), nullable=False, default=""),
    Column("is_service_user", Boolean, nullable=False, default=False),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("auto_groups", JSON, nullable=False),
    Column("issued", String(32), nullable=False, default="api"),
    Column("created_at", UTCDateTime, nullable=True),
    Column("last_login", UTCDateTime, nullable=True),
)

personal_access_tokens = Table(
    "personal_access_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(255), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("hashed_token", String(64), nullable=False, unique=True),
    Column("expiration_date", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used", UTCDateTime, nullable=True),
)

peers = Table(
    "peers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("key", String(64), nullable=False, unique=True),
    Column("ip", String(64), nullable=False),
    Column("ipv6", String(64), nullable=True),
    Column("name", String(255), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("dns_label", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("os", String(255), nullable=False, default=""),
    Column("kernel_version", String(255), nullable=False, default=""),
    Column("version", String(64), nullable=False, default=""),
    Column("connection_ip", String(64), nullable=False, default=""),
    Column("connected", Boolean, nullable=False, default=False),
    Column("last_seen", UTCDateTime, nullable=True),
    Column("last_login", UTCDateTime, nullable=True),
    Column("user_id", String(255), nullable=False, default=""),
    Column("setup_key_id", String(64), nullable=False, default=""),
    Column("ssh_enabled", Boolean, nullable=False, default=False),
    Column("login_expiration_enabled", Boolean, nullable=False, default=False),
    Column("inactivity_expiration_enabled", Boolean, nullable=False, default=False),
    Column("ephemeral", Boolean, nullable=False, default=False),
    Column("ipv6_capable", Boolean, nullable=False, default=False),
    Column("endpoints", JSON, nullable=False),
    Column("credential_hash", String(64), nullable=True),
    UniqueConstraint("account_id", "ip"),
    UniqueConstraint("account_id", "dns_label"),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("name", String(255), nullable=False),
    Column("issued", String(32), nullable=False, default="api"),
    Column("created_at", UTCDateTime, nullable=False),
)

group_peers = Table(
    "group_peers",
    metadata,
    Column("group_id", String(64), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("peer_id", String(64), ForeignKey("peers.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("position", Integer, nullable=False, default=0),
    Index("ix_group_peers_peer_id", "peer_id"),
    Index("ix_group_peers_account_id", "account_id"),
)

setup_keys = Table(
    "setup_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("name", String(255), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("type", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("used_times", Integer, nullable=False, default=0),
    Column("last_used", UTCDateTime, nullable=True),
    Column("auto_groups", JSON, nullable=False),
    Column("usage_limit", Integer, nullable=False, default=0),
    Column("ephemeral", Boolean, nullable=False, default=False),
    Column("allow_extra_dns_labels", Boolean, nullable=False, default=False),
)

routes = Table(
    "routes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("public_id", String(64), nullable=False),
    Column("net_id", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("network", String(64), nullable=True),
    Column("domains", JSON, nullable=False),
    Column("network_type", Integer, nullable=False),
    Column("peer", String(64), nullable=False, default=""),
    Column("peer_groups", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("masquerade", Boolean, nullable=False),
    Column("metric", Integer, nullable=False),
    Column("keep_route", Boolean, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("access_control_groups", JSON, nullable=False),
    Column("skip_auto_apply", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("activity", Integer, nullable=False),
    Column("initiator_id", String(255), nullable=False),
    Column("target_id", String(255), nullable=False),
    Column("meta", JSON, nullable=False),
)

# The last status report of each peer (what its agent does with its routes: `ReportStatus`),
# replaced by the next one. Written outside the account lock and never a user change.
status_reports = Table(
    "status_reports",
    metadata,
    Column("peer_id", String(64), ForeignKey("peers.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("report", Text, nullable=False),  # JSON (`mapping.STATUS_REPORTS`), compared as text
    Column("updated_at", UTCDateTime, nullable=False),
)

# Dashboard sign-ins (`WebSession`): the hash of the cookie's value, never the value; a session
# goes with the token it was opened with (and so with its user).
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column(
        "account_id", String(64), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("user_id", String(255), nullable=False),
    Column(
        "token_id",
        String(64),
        ForeignKey("personal_access_tokens.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)
