"""Setup keys: the list, creating one (its secret shown once, in the answer to the creation only,
with a copy button), revoking one; through the setup-key service, as `/api/setup-keys` does."""

from __future__ import annotations

from fastapi import Request, Response

from meshroute.core.errors import InvalidArgument, MeshrouteError, PermissionDenied
from meshroute.server.api.errors import http_status, public_message
from meshroute.server.clock import utcnow
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router, see_other
from meshroute.server.web.session import Post, Viewer, Visitor, services, views

router = page_router()
DAY = 86400


@router.get("/setup-keys")
def keys_page(request: Request, who: Viewer) -> Response:
    return _page(request, who)


def _page(request: Request, who: Visitor, *, code: int = 200, **context: object) -> Response:
    user = who.user
    keys = views(request).setup_keys(user.account_id, user.id)
    groups = views(request).groups(user.account_id, user.id).groups
    context.setdefault("errors", {})
    context.setdefault(
        "v", {"name": "", "type": "reusable", "days": "30", "usage_limit": "0", "auto_groups": []}
    )
    context.setdefault("created", None)
    return page(request, "setup_keys.html", who, code=code, keys=keys, groups=groups, now=utcnow(), **context)


@router.post("/setup-keys")
def create_key(request: Request, post: Post) -> Response:
    user, form = post.visitor.user, post.form
    name, key_type = form.get("name").strip(), form.get("type", "reusable")
    days_text, limit_text = form.get("days", "0").strip(), form.get("usage_limit", "0").strip()
    auto_groups = form.all("auto_groups")
    v = {
        "name": name,
        "type": key_type,
        "days": days_text,
        "usage_limit": limit_text,
        "auto_groups": auto_groups,
    }
    try:
        days, limit = _number(days_text, "days"), _number(limit_text, "usage_limit")
        key, secret = services(request).setup_keys.create(
            user.account_id,
            user.id,
            name=name,
            key_type=key_type,
            expires_in=days * DAY,
            auto_groups=auto_groups,
            usage_limit=limit,
            ephemeral=form.flag("ephemeral"),
        )
    except MeshrouteError as exc:
        if isinstance(exc, PermissionDenied):
            raise  # an error page, not a field
        field = next(
            (f for f in ("name", "type", "expires", "usage_limit", "group") if f in exc.message), "name"
        )
        field = {"expires": "days", "group": "auto_groups"}.get(field, field)
        return _page(request, post.visitor, code=http_status(exc), errors={field: public_message(exc)}, v=v)
    return _page(request, post.visitor, created=(key, secret))


def _number(text: str, field: str) -> int:
    try:
        return int(text or "0")
    except ValueError:
        what = (
            "expires_in should be 0 (never) or between 1 and 365 days"
            if field == "days"
            else f"{field} should be a whole number"
        )
        raise InvalidArgument(what) from None


@router.post("/setup-keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: str, post: Post) -> Response:
    user = post.visitor.user
    key = views(request).setup_key(user.account_id, user.id, key_id)
    services(request).setup_keys.update(
        user.account_id, user.id, key_id, revoked=True, auto_groups=key.auto_groups
    )
    return see_other(request, "/setup-keys")
