"""Constants of the agent <-> server wire protocol that both sides use (one definition each)."""

from __future__ import annotations

from typing import Final

# gRPC metadata keys: every call after registration carries the peer's key and its credential.
PEER_KEY_MD: Final = "x-meshroute-peer-key"
CREDENTIAL_MD: Final = "x-meshroute-credential"

# Trailing metadata of RESOURCE_EXHAUSTED (too many failed authentications): seconds to wait.
RETRY_AFTER_MD: Final = "retry-after"

# Sync ends with NOT_FOUND and this detail when the peer was deleted while connected.
PEER_DELETED: Final = "peer has been deleted"

# Both ends accept maps up to this size (a 30,000-peer map is about 3 MB).
MAX_MESSAGE_BYTES: Final = 64 << 20

# Keepalive on the agent's connection, both ends: a ping every 10 s, 5 s for the answer, so either
# end sees the other gone within 15 s (the server then shows the peer disconnected).
KEEPALIVE_TIME_MS: Final = 10_000
KEEPALIVE_TIMEOUT_MS: Final = 5_000
