"""Groups: members (and how many are up), the routes that use each group and as what; creating a
group and deleting one, through the group service (a group in use is refused with the API's
message, shown on the page)."""

from __future__ import annotations

from fastapi import Request, Response

from meshroute.core.errors import MeshrouteError, PermissionDenied
from meshroute.server.api.errors import http_status, public_message
from meshroute.server.web.data import picture
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router, see_other
from meshroute.server.web.session import Post, Viewer, Visitor, services, views

router = page_router()


@router.get("/groups")
def groups_page(request: Request, who: Viewer) -> Response:
    return _page(request, who)


def _page(request: Request, who: Visitor, *, code: int = 200, **context: object) -> Response:
    context.setdefault("errors", {})
    context.setdefault("name", "")
    context.setdefault("chosen", [])
    context.setdefault("refusal", "")
    return page(request, "groups.html", who, code=code, pic=picture(views(request), who), **context)


@router.post("/groups")
def create_group(request: Request, post: Post) -> Response:
    user, form = post.visitor.user, post.form
    name, members = form.get("name").strip(), form.all("peers")
    try:
        services(request).groups.create(user.account_id, user.id, name, members)
    except MeshrouteError as exc:
        if isinstance(exc, PermissionDenied):
            raise  # an error page, not a field
        field = "peers" if "peer" in exc.message else "name"
        return _page(
            request,
            post.visitor,
            code=http_status(exc),
            errors={field: public_message(exc)},
            name=name,
            chosen=members,
        )
    return see_other(request, "/groups")


@router.post("/groups/{group_id}/delete")
def delete_group(request: Request, group_id: str, post: Post) -> Response:
    user = post.visitor.user
    try:
        services(request).groups.delete(user.account_id, user.id, group_id)
    except MeshrouteError as exc:
        if isinstance(exc, PermissionDenied):
            raise  # an error page, not a field
        pic = picture(views(request), post.visitor)
        what = f"Group {pic.group_name(group_id)} was not deleted: {public_message(exc)}"
        return _page(request, post.visitor, code=http_status(exc), refusal=what)
    return see_other(request, "/groups")
