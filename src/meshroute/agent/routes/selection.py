"""The user's route selection and the exit-node rules (agent-behaviour.md §5), pure.

`RouteSelector` holds what the user chose, per NetID, with the reference's default-on
semantics: a NetID nobody said anything about is selected, so routes that appear later are used
at once. The user can select (replacing or appending), deselect, select all or deselect all;
"deselect all" also keeps routes that appear later off.

Exit nodes (`0.0.0.0/0`, `::/0`) are the exception: at most one is used at a time.
`reconcile_exit_nodes` runs on every network map and picks it: the user's choice, else the one
management auto-applies (SkipAutoApply false; the smallest NetID if several), else none. The
IPv6 twin of an exit node (NetID `<netid>-v6`, `::/0`) always follows its IPv4 base.

`groups` everywhere is the client's HA groups: HA ID (`MapRoute.ha_id`, `NetID|NetString`) to
its candidate routes. A group is an exit node when its first candidate is. The selector is not
thread-safe: the agent drives it from its event loop. The only I/O is `load_selector` and
`save_selector`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from meshroute.agent.identity import write_private
from meshroute.core.networkmap.types import V4_DEFAULT_NETWORK, V6_DEFAULT_NETWORK, V6_NET_ID_SUFFIX, MapRoute

Groups = Mapping[str, Sequence[MapRoute]]
SELECTION_FILE = "route_selection.json"


def net_id_of(ha_id: str) -> str:
    """The NetID part of an HA ID (before the last `|`; the NetString never contains one)."""
    return ha_id.rpartition("|")[0]


def is_exit_group(routes: Sequence[MapRoute]) -> bool:
    return bool(routes) and routes[0].is_exit_node


def _not_available(net_id: str) -> str:
    return f"route '{net_id}' is not available"


class RouteSelector:
    """Which NetIDs the user selected or deselected, and whether they deselected everything."""

    __slots__ = ("_deselect_all", "_deselected", "_selected")

    def __init__(self) -> None:
        self._selected: set[str] = set()
        self._deselected: set[str] = set()
        self._deselect_all = False

    def __repr__(self) -> str:
        return (
            f"RouteSelector(selected={self.selected_ids}, deselected={self.deselected_ids}, "
            f"deselect_all={self._deselect_all})"
        )

    # -- reading ---------------------------------------------------------------------------------

    @property
    def all_deselected(self) -> bool:
        """The user deselected everything (routes that appear later stay off too)."""
        return self._deselect_all

    @property
    def selected_ids(self) -> tuple[str, ...]:
        """NetIDs explicitly selected, sorted."""
        return tuple(sorted(self._selected))

    @property
    def deselected_ids(self) -> tuple[str, ...]:
        """NetIDs explicitly deselected, sorted."""
        return tuple(sorted(self._deselected))

    def is_selected(self, net_id: str) -> bool:
        return not self._deselect_all and net_id not in self._deselected

    def has_user_selection(self, net_id: str) -> bool:
        """Whether this NetID has explicit state (selected or deselected). Literal: a `-v6`
        twin only has state once `sync_paired_selection` copied it."""
        return net_id in self._selected or net_id in self._deselected

    # -- the user's operations -------------------------------------------------------------------

    def select(self, ids: Iterable[str], append: bool, all_ids: Collection[str]) -> list[str]:
        """Select `ids` among the NetIDs known now (`all_ids`). Without `append` (or after a
        deselect-all) everything else known now is deselected; NetIDs that appear later are
        still selected by default. Unknown ids give an error each; the valid ones still apply.
        Returns the errors, in request order."""
        known = frozenset(all_ids)
        if not append or self._deselect_all:
            self._selected.clear()
            self._deselected = set(known)
        errors = []
        for net_id in ids:
            if net_id not in known:
                errors.append(_not_available(net_id))
                continue
            self._deselected.discard(net_id)
            self._selected.add(net_id)
        self._deselect_all = False
        return errors

    def select_all(self) -> None:
        self._deselect_all = False
        self._selected.clear()
        self._deselected.clear()

    def deselect(self, ids: Iterable[str], all_ids: Collection[str]) -> list[str]:
        """Deselect `ids`; unknown ids give an error each. After a deselect-all this does
        nothing and reports nothing, unknown ids included (the reference's behaviour)."""
        if self._deselect_all:
            return []
        known = frozenset(all_ids)
        errors = []
        for net_id in ids:
            if net_id not in known:
                errors.append(_not_available(net_id))
                continue
            self._deselected.add(net_id)
            self._selected.discard(net_id)
        return errors

    def deselect_all(self) -> None:
        self._deselect_all = True
        self._selected.clear()
        self._deselected.clear()

    # -- exit-node maintenance (no-ops while everything is deselected: "all off" wins) -----------

    def set_exclusive_exit_node(self, preferred: str | None, exit_ids: Iterable[str]) -> None:
        """Make `preferred` (None: none) the only selected one of `exit_ids`."""
        if self._deselect_all:
            return
        for net_id in exit_ids:
            if net_id != preferred:
                self._deselected.add(net_id)
                self._selected.discard(net_id)
        if preferred:
            self._deselected.discard(preferred)
            self._selected.add(preferred)

    def sync_paired_selection(self, base: str, v6: str) -> None:
        """Give the `-v6` twin exactly the explicit state of its base (none included), so a
        stale state of its own can never leak `::/0` past a deselected base."""
        if self._deselect_all:
            return
        self._selected.discard(v6)
        self._deselected.discard(v6)
        if base in self._selected:
            self._selected.add(v6)
        elif base in self._deselected:
            self._deselected.add(v6)

    # -- filtering -------------------------------------------------------------------------------

    def filter_selected(self, groups: Groups) -> dict[str, tuple[MapRoute, ...]]:
        """The groups whose NetID is selected, by HA ID (sorted)."""
        if self._deselect_all:
            return {}
        return {
            ha_id: tuple(groups[ha_id])
            for ha_id in sorted(groups)
            if net_id_of(ha_id) not in self._deselected
        }

    def filter_selected_exit_nodes(self, groups: Groups) -> dict[str, tuple[MapRoute, ...]]:
        """The groups to route, by HA ID (sorted): `filter_selected`, where an exit node without
        explicit state keeps only its candidates with SkipAutoApply false (none: dropped)."""
        out: dict[str, tuple[MapRoute, ...]] = {}
        for ha_id, routes in self.filter_selected(groups).items():
            if not is_exit_group(routes) or self.has_user_selection(net_id_of(ha_id)):
                out[ha_id] = routes
                continue
            auto = tuple(r for r in routes if not r.skip_auto_apply)
            if auto:
                out[ha_id] = auto
        return out

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> str:
        """The reference's shape: `{"selected_routes": {"<netid>": {}}, "deselected_routes":
        {...}, "deselect_all": bool}`, NetIDs sorted."""
        data = {
            "selected_routes": {net_id: {} for net_id in self.selected_ids},
            "deselected_routes": {net_id: {} for net_id in self.deselected_ids},
            "deselect_all": self._deselect_all,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RouteSelector:
        """Empty text or `null` is a fresh selector; anything malformed raises ValueError."""
        selector = cls()
        if not text.strip():
            return selector
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"route selection is not JSON: {exc}") from None
        if data is None:
            return selector
        if not isinstance(data, dict):
            raise ValueError("route selection must be a JSON object")
        selector._selected = _net_id_set(data, "selected_routes")
        selector._deselected = _net_id_set(data, "deselected_routes")
        flag = data.get("deselect_all")
        if flag is not None and not isinstance(flag, bool):
            raise ValueError("route selection: 'deselect_all' must be true or false")
        selector._deselect_all = bool(flag)
        return selector


def _net_id_set(data: dict[str, Any], key: str) -> set[str]:
    value = data.get(key)
    if value is None:
        return set()
    # Each NetID maps to an empty object (Go's set-as-map); null is tolerated like Go does.
    if not isinstance(value, dict) or not all(v is None or isinstance(v, dict) for v in value.values()):
        raise ValueError(f"route selection: {key!r} must map NetIDs to {{}}")
    return set(value)


def load_selector(path: Path) -> RouteSelector:
    """The selection saved at `path`; a fresh one when the file does not exist. A damaged file
    raises ValueError naming it (the caller decides whether to start afresh)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return RouteSelector()
    try:
        return RouteSelector.from_json(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def save_selector(path: Path, selector: RouteSelector) -> None:
    """Atomically, mode 0600."""
    write_private(path, selector.to_json())


# -- exit nodes over the map --------------------------------------------------------------------


def _by_net_id(groups: Groups) -> dict[str, list[Sequence[MapRoute]]]:
    """NetID -> its groups in HA-ID order (one NetID may name several networks)."""
    out: dict[str, list[Sequence[MapRoute]]] = {}
    for ha_id in sorted(groups):
        out.setdefault(net_id_of(ha_id), []).append(groups[ha_id])
    return out


def _has_exit(net_groups: Sequence[Sequence[MapRoute]], network: str | None = None) -> bool:
    return any(is_exit_group(g) and (network is None or g[0].network == network) for g in net_groups)


def exit_node_ids(groups: Groups) -> list[str]:
    """NetIDs that name an exit node, sorted (`-v6` twins included)."""
    return [net_id for net_id, gs in _by_net_id(groups).items() if _has_exit(gs)]


def v6_exit_pairs(groups: Groups) -> dict[str, str]:
    """`-v6` twin NetID -> its base, for every `X-v6` on `::/0` whose `X` is on `0.0.0.0/0`."""
    by_net_id = _by_net_id(groups)
    pairs = {}
    for net_id, gs in by_net_id.items():
        base = net_id.removesuffix(V6_NET_ID_SUFFIX)
        if (
            base != net_id
            and _has_exit(gs, V6_DEFAULT_NETWORK)
            and _has_exit(by_net_id.get(base, ()), V4_DEFAULT_NETWORK)
        ):
            pairs[net_id] = base
    return pairs


def expand_v6_exit_pairs(ids: Sequence[str], groups: Groups) -> list[str]:
    """`ids` plus the `-v6` twin of every IPv4 exit node among them (appended, never twice)."""
    twins = {base: v6 for v6, base in v6_exit_pairs(groups).items()}
    out = list(ids)
    for net_id in ids:
        v6 = twins.get(net_id)
        if v6 is not None and v6 not in out:
            out.append(v6)
    return out


def pick_preferred_exit_node(user_selected: Iterable[str], by_management: Iterable[str]) -> str | None:
    """The user's pick (the smallest if an old state left several), else the smallest one
    management auto-applies, else None: an exit node is never forced on arbitrarily."""
    return min(user_selected, default=None) or min(by_management, default=None)


def reconcile_exit_nodes(selector: RouteSelector, groups: Groups) -> None:
    """Run on every network map: at most one exit node stays selected (user > management
    auto-apply > none), and `-v6` twins take their base's state. A deselect-all is left alone."""
    pairs = v6_exit_pairs(groups)
    if not selector.all_deselected:
        _enforce_single_exit_node(selector, groups, pairs)
    # The reference mirrors the twins before enforcing, so a twin of an exit node turned off
    # here would keep routing ::/0 until the next map; mirroring after makes them agree now.
    for v6, base in sorted(pairs.items()):
        selector.sync_paired_selection(base, v6)


def _enforce_single_exit_node(selector: RouteSelector, groups: Groups, pairs: Mapping[str, str]) -> None:
    exit_ids: list[str] = []
    user_selected: list[str] = []
    by_management: list[str] = []
    for net_id, gs in _by_net_id(groups).items():
        # A paired twin is not a choice of its own: it follows its base.
        if net_id in pairs or not _has_exit(gs):
            continue
        exit_ids.append(net_id)
        if selector.has_user_selection(net_id):
            if selector.is_selected(net_id):
                user_selected.append(net_id)
        elif any(not r.skip_auto_apply for g in gs if is_exit_group(g) for r in g):
            by_management.append(net_id)
    if exit_ids:
        selector.set_exclusive_exit_node(pick_preferred_exit_node(user_selected, by_management), exit_ids)


# -- what the user asks for (control socket / CLI) ----------------------------------------------


def select_routes(selector: RouteSelector, ids: Sequence[str], append: bool, groups: Groups) -> list[str]:
    """Select NetIDs (`-v6` twins follow). Selecting an exit node deselects every other one,
    even when part of the request failed (the valid ids were applied). Returns the errors."""
    requested = expand_v6_exit_pairs(ids, groups)
    all_ids = sorted(_by_net_id(groups))
    errors = selector.select(requested, append, all_ids)
    exits = exit_node_ids(groups)
    if any(net_id in exits for net_id in requested):
        others = [net_id for net_id in exits if net_id not in requested]
        errors += selector.deselect(others, all_ids)
    return errors


def deselect_routes(selector: RouteSelector, ids: Sequence[str], groups: Groups) -> list[str]:
    """Deselect NetIDs (`-v6` twins follow). Returns the errors."""
    return selector.deselect(expand_v6_exit_pairs(ids, groups), sorted(_by_net_id(groups)))


def select_all_routes(selector: RouteSelector, groups: Groups) -> None:
    """Select everything, then reconcile at once: select-all wipes the explicit exit-node
    state, and management may auto-apply several."""
    selector.select_all()
    reconcile_exit_nodes(selector, groups)


def deselect_all_routes(selector: RouteSelector) -> None:
    selector.deselect_all()
