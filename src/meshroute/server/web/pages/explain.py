"""Route explain: for a peer and a destination, the routes it receives that cover it, in the order
its agent uses them, the one that wins, and why other routes do not reach it (`core.explain`,
the same answer as `GET /api/routes/explain`). A read: it works for the auditor role, and its
URL (peer and destination, never a secret) can be shared."""

from __future__ import annotations

from fastapi import Request, Response

from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.server.api.errors import public_message
from meshroute.server.web.data import picture
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router
from meshroute.server.web.session import Viewer, views

router = page_router()


@router.get("/explain")
def explain_page(request: Request, who: Viewer, peer: str = "", destination: str = "") -> Response:
    reads = views(request)
    pic = picture(reads, who)
    errors: dict[str, str] = {}
    found = None
    status = 200
    if peer or destination:
        try:
            found = reads.explain(who.user.account_id, who.user.id, peer, destination)
        except InvalidArgument as exc:
            errors["peer" if "peer" in exc.message else "destination"] = public_message(exc)
            status = 422
        except NotFound as exc:
            errors["peer"] = public_message(exc)
            status = 404
    return page(
        request,
        "explain.html",
        who,
        code=status,
        pic=pic,
        peer=peer,
        destination=destination,
        errors=errors,
        e=found.explanation if found else None,
        names=found.peer_names if found else {},
    )
