"""Creating and editing a route as the seed's five steps: define the network, choose the routing
peer(s), configure the settings, set the distribution, save. The form becomes the very request body
`POST /api/routes` takes and goes through the same parsing (`api.routes.to_input`) and the same
service, so the rules and their messages are the API's; a refused form comes back with the message
next to the field it is about, and nothing is changed."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request, Response

from meshroute.core.domains import to_unicode
from meshroute.core.errors import InvalidArgument, MeshrouteError, PermissionDenied
from meshroute.core.model import MAX_METRIC, MIN_METRIC, Route
from meshroute.server.api.errors import http_status, public_message
from meshroute.server.api.routes import to_input
from meshroute.server.api.schemas import RouteRequest
from meshroute.server.web.data import Picture, picture
from meshroute.server.web.forms import Form
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router, see_other
from meshroute.server.web.session import Post, Viewer, Visitor, services, views

router = page_router()
DEFAULTS: dict[str, Any] = {
    "network_id": "",
    "description": "",
    "dest_kind": "network",
    "network": "",
    "domains": "",
    "routing_kind": "groups",
    "peer": "",
    "peer_groups": [],
    "metric": "9999",
    "masquerade": True,
    "enabled": True,
    "keep_route": False,
    "skip_auto_apply": False,
    "groups": [],
    "access_control_groups": [],
}
_GROUP_ID = re.compile(r"group id (\S+) not found")


@router.get("/routes/new")
def new_route(request: Request, who: Viewer) -> Response:
    _may(who, "create")
    return _form(request, who, dict(DEFAULTS), {}, None)


@router.post("/routes/new")
def create_route(request: Request, post: Post) -> Response:
    return _save(request, post, None)


@router.get("/routes/{route_id}/edit")
def edit_route(request: Request, route_id: str, who: Viewer) -> Response:
    route = views(request).route(who.user.account_id, who.user.id, route_id)
    _may(who, "update")
    return _form(request, who, values_of(route), {}, route)


@router.post("/routes/{route_id}/edit")
def update_route(request: Request, route_id: str, post: Post) -> Response:
    user = post.visitor.user
    return _save(request, post, views(request).route(user.account_id, user.id, route_id))


def _may(who: Visitor, op: str) -> None:
    """A form is shown only to whom may send it (the service decides again when it comes)."""
    if not who.can("routes", op):
        raise PermissionDenied("permission denied")


def _form(
    request: Request,
    who: Visitor,
    values: dict[str, Any],
    errors: dict[str, str],
    route: Route | None,
    status: int = 200,
) -> Response:
    pic = picture(views(request), who)
    return page(request, "route_form.html", who, code=status, v=values, errors=errors, route=route, pic=pic)


def _save(request: Request, post: Post, route: Route | None) -> Response:
    user, form = post.visitor.user, post.form
    values = values_from(form)
    try:
        data = to_input(RouteRequest.model_validate(request_body(form)))
        svc = services(request).routes
        if route is None:
            saved = svc.create(user.account_id, user.id, data)
        else:
            saved = svc.save(user.account_id, user.id, route.id, data)
    except MeshrouteError as exc:
        if isinstance(exc, PermissionDenied):
            raise  # an error page, not a field
        pic = picture(views(request), post.visitor)
        errors = {field_of(exc.message, form): with_names(public_message(exc), pic)}
        return _form(request, post.visitor, values, errors, route, status=http_status(exc))
    return see_other(request, f"/routes/{saved.id}")


def request_body(form: Form) -> dict[str, Any]:
    """The form as the JSON body of `POST /api/routes` (what is left empty is left out)."""
    body: dict[str, Any] = {
        "network_id": form.get("network_id").strip(),
        "description": form.get("description").strip(),
        "enabled": form.flag("enabled"),
        "masquerade": form.flag("masquerade"),
        "keep_route": form.flag("keep_route"),
        "skip_auto_apply": form.flag("skip_auto_apply"),
        "groups": form.all("groups"),
        "metric": _metric(form.get("metric")),
    }
    if form.get("dest_kind") == "domains":
        domains = [d for d in re.split(r"[\s,]+", form.get("domains")) if d]
        if domains:
            body["domains"] = domains
    elif form.get("network").strip():
        body["network"] = form.get("network").strip()
    if form.get("routing_kind") == "peer":
        if form.get("peer"):
            body["peer"] = form.get("peer")
    elif form.all("peer_groups"):
        body["peer_groups"] = form.all("peer_groups")
    if form.all("access_control_groups"):
        body["access_control_groups"] = form.all("access_control_groups")
    return body


def _metric(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidArgument(f"metric should be between {MIN_METRIC} and {MAX_METRIC}") from None


def field_of(message: str, form: Form) -> str:
    """The form field a refusal is about ("" for the form as a whole)."""
    text = message.lower()
    routing = "peer" if form.get("routing_kind") == "peer" else "peer_groups"
    found = _GROUP_ID.search(message)
    if found:
        for name in ("peer_groups", "access_control_groups", "groups"):
            if found.group(1) in form.all(name):
                return name
        return "groups"
    rules = (
        ("already has this route", routing),
        ("would serve", routing),
        ("identifier", "network_id"),
        ("metric", "metric"),
        ("group ids should not be empty", "groups"),
        ("group id should not be empty", "groups"),
        ("'network' or 'domains'", "domains" if form.get("dest_kind") == "domains" else "network"),
        ("domain", "domains"),
        ("network", "network"),
        ("prefix", "network"),
        ("peer", routing),
        ("groups", "groups"),
    )
    return next((name for needle, name in rules if needle in text), "")


def with_names(message: str, pic: Picture) -> str:
    """The API's message, with the peers and groups it names by ID also named by name."""
    for pid, p in pic.peers.items():
        if pid in message:
            message = message.replace(pid, f"{p.name} ({pid})")
    for gid, g in pic.groups.items():
        if gid in message:
            message = message.replace(gid, f"{g.name} ({gid})")
    return message


def values_from(form: Form) -> dict[str, Any]:
    """What the visitor typed, to fill the form in again."""
    values: dict[str, Any] = {k: form.get(k) for k, v in DEFAULTS.items() if isinstance(v, str)}
    values.update({k: form.all(k) for k, v in DEFAULTS.items() if isinstance(v, list)})
    values.update({k: form.flag(k) for k, v in DEFAULTS.items() if isinstance(v, bool)})
    return values


def values_of(route: Route) -> dict[str, Any]:
    return {
        "network_id": route.net_id,
        "description": route.description,
        "dest_kind": "domains" if route.domains else "network",
        "network": "" if route.domains else str(route.network or ""),
        "domains": "\n".join(to_unicode(d) for d in route.domains),
        "routing_kind": "peer" if route.peer else "groups",
        "peer": route.peer,
        "peer_groups": list(route.peer_groups),
        "metric": str(route.metric),
        "masquerade": route.masquerade,
        "enabled": route.enabled,
        "keep_route": route.keep_route,
        "skip_auto_apply": route.skip_auto_apply,
        "groups": list(route.groups),
        "access_control_groups": list(route.access_control_groups),
    }
