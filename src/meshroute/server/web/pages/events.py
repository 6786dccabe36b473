"""The audit log, newest first, filtered by activity and by route (`GET /api/events/audit`'s data)."""

from __future__ import annotations

from fastapi import Request, Response

from meshroute.core import activity
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router
from meshroute.server.web.session import Viewer, views

router = page_router()
MAX_SHOWN = 500


@router.get("/events")
def events_page(request: Request, who: Viewer, activity_code: str = "", route: str = "") -> Response:
    user = who.user
    events, users = views(request).events(user.account_id, user.id)
    routes = views(request).routes(user.account_id, user.id)
    codes = sorted({e.activity for e in events}, key=activity.string_code)
    shown = [
        e
        for e in events
        if (not activity_code or activity.string_code(e.activity) == activity_code)
        and (not route or e.target_id == route)
    ]
    return page(
        request,
        "events.html",
        who,
        events=shown[:MAX_SHOWN],
        total=len(shown),
        users=users,
        routes=sorted(routes, key=lambda r: (r.net_id.casefold(), r.id)),
        codes=[(activity.string_code(c), activity.message(c)) for c in codes],
        chosen_activity=activity_code,
        chosen_route=route,
        message=activity.message,
        string_code=activity.string_code,
    )
