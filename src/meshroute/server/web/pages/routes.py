"""Routes: the list grouped by network ID (with the overlap report), a route's page (its diagram,
clients and events, refreshed in place), enabling and disabling, deletion after a confirmation.
Every change goes through the route service, as `PUT`/`DELETE /api/routes/{id}` do."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from meshroute.core.activity import message as activity_message
from meshroute.core.model import Route
from meshroute.server.services.routes import RouteInput
from meshroute.server.web.data import net_id_blocks, picture
from meshroute.server.web.diagram import draw
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router, safe_next, see_other
from meshroute.server.web.session import Post, Viewer, Visitor, is_htmx, services, views

router = page_router()
MAX_ROUTE_EVENTS = 50


@router.get("/routes")
def routes_page(request: Request, who: Viewer) -> Response:
    pic = picture(views(request), who)
    found = views(request).overlaps(who.user.account_id, who.user.id)
    return page(
        request,
        "routes.html",
        who,
        pic=pic,
        blocks=net_id_blocks(pic.routes),
        overlaps=found.overlaps,
        names=found.peer_names,
        back="/routes",
    )


@router.get("/routes/{route_id}")
def route_page(request: Request, route_id: str, who: Viewer) -> Response:
    context = _route_context(request, who, route_id)
    events, users = views(request).events(who.user.account_id, who.user.id)
    mine = [e for e in events if e.target_id == route_id][:MAX_ROUTE_EVENTS]
    return page(
        request,
        "route.html",
        who,
        events=mine,
        users=users,
        activity=activity_message,
        back=f"/routes/{route_id}",
        **context,
    )


@router.get("/routes/{route_id}/live")
def route_live(request: Request, route_id: str, who: Viewer) -> Response:
    """The diagram and the clients' table, for the page to refresh in place."""
    return page(request, "_route_live.html", who, **_route_context(request, who, route_id))


def _route_context(request: Request, who: Visitor, route_id: str) -> dict[str, Any]:
    reads = views(request)
    route = reads.route(who.user.account_id, who.user.id, route_id)
    pic = picture(reads, who)
    status = reads.route_status(who.user.account_id, who.user.id, route_id)
    drawing = draw(route, pic, status.clients)
    return {"route": route, "pic": pic, "clients": status.clients, "drawing": drawing}


def input_of(route: Route) -> RouteInput:
    """The route as a full replacement of itself (what a toggle saves, with `enabled` flipped)."""
    return RouteInput(
        net_id=route.net_id,
        network=None if route.domains else route.network,
        network_type=route.network_type,
        domains=list(route.domains),
        description=route.description,
        peer=route.peer,
        peer_groups=list(route.peer_groups),
        enabled=route.enabled,
        masquerade=route.masquerade,
        metric=route.metric,
        keep_route=route.keep_route,
        groups=list(route.groups),
        access_control_groups=list(route.access_control_groups),
        skip_auto_apply=route.skip_auto_apply,
    )


@router.post("/routes/{route_id}/toggle")
def toggle(request: Request, route_id: str, post: Post) -> Response:
    user = post.visitor.user
    route = views(request).route(user.account_id, user.id, route_id)
    data = input_of(route)
    data.enabled = not route.enabled
    saved = services(request).routes.save(user.account_id, user.id, route_id, data)
    if is_htmx(request):
        return page(request, "_toggle.html", post.visitor, r=saved, back=safe_next(post.form.get("next")))
    return see_other(request, safe_next(post.form.get("next", "/routes")))


@router.get("/routes/{route_id}/delete")
def delete_page(request: Request, route_id: str, who: Viewer) -> Response:
    route = views(request).route(who.user.account_id, who.user.id, route_id)
    return page(request, "route_delete.html", who, route=route, pic=picture(views(request), who))


@router.post("/routes/{route_id}/delete")
def delete(request: Request, route_id: str, post: Post) -> Response:
    user = post.visitor.user
    services(request).routes.delete(user.account_id, user.id, route_id)
    return see_other(request, "/routes")
