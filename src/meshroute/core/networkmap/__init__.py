"""Network maps: what every peer of an account must know, computed from scratch or incrementally.

- `types`: wire-form objects (`MapPeer`, `MapRoute`, `RouteFirewallRule`, `NetworkMap`, `MapDelta`)
  and `apply_delta`;
- `oracle`: `compute_network_map`, the plain from-scratch specification;
- `state`: `AccountState`, the per-account indexes that turn changes into per-peer deltas.

The changes it applies (`MapChange`) are the map-relevant part of `core.changes`. Setup-key auto
groups need no change kind of their own: a peer joining with auto groups is a
`PeerUpserted` plus one `GroupUpserted` per group, in the same batch.
"""

from meshroute.core.changes import (
    GroupDeleted,
    GroupUpserted,
    MapChange,
    PeerDeleted,
    PeerUpserted,
    RouteDeleted,
    RouteUpserted,
)
from meshroute.core.networkmap.oracle import compute_network_map
from meshroute.core.networkmap.state import AccountState
from meshroute.core.networkmap.types import (
    V6_DEFAULT_ID_SUFFIX,
    V6_NET_ID_SUFFIX,
    MapDelta,
    MapPeer,
    MapRoute,
    NetworkMap,
    RouteFirewallRule,
    apply_delta,
)

__all__ = [
    "V6_DEFAULT_ID_SUFFIX",
    "V6_NET_ID_SUFFIX",
    "AccountState",
    "GroupDeleted",
    "GroupUpserted",
    "MapChange",
    "MapDelta",
    "MapPeer",
    "MapRoute",
    "NetworkMap",
    "PeerDeleted",
    "PeerUpserted",
    "RouteDeleted",
    "RouteFirewallRule",
    "RouteUpserted",
    "apply_delta",
    "compute_network_map",
]
