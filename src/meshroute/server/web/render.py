"""Pages from Jinja2 templates (autoescaped: every value is text unless marked safe, as the SVG
diagram is), with the headers every dashboard answer carries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from meshroute.core.domains import to_unicode
from meshroute.core.model import Route
from meshroute.server.web.session import CSRF_FIELD, Visitor

TEMPLATES = Path(__file__).parent / "templates"
HTMX = "/static/htmx-2.0.11.min.js"
# Nothing from elsewhere, no inline script; inline SVG needs no style attributes (it uses classes).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show account data (and once, a setup key)
}
NAV = (
    ("Routes", "/routes"),
    ("Explain", "/explain"),
    ("Peers", "/peers"),
    ("Groups", "/groups"),
    ("Setup keys", "/setup-keys"),
    ("Events", "/events"),
)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """`3 min ago` and the like; `never` for none."""
    if when is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 5:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def utc(when: datetime | None) -> str:
    return "never" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def destination(route: Route) -> str:
    if route.domains:
        return ", ".join(to_unicode(d) for d in route.domains)
    return str(route.network) if route.network is not None else "-"


def route_kind(route: Route) -> str:
    if route.domains:
        return "domains"
    if str(route.network) in ("0.0.0.0/0", "::/0"):
        return "exit node"
    return route.network_type.api_name


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(("html", "svg")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(ago=ago, utc=utc)
_env.globals.update(destination=destination, route_kind=route_kind, nav=NAV, csrf_field=CSRF_FIELD, htmx=HTMX)


def page(
    request: Request, template: str, who: Visitor | None, *, code: int = 200, **context: Any
) -> HTMLResponse:
    """A whole page (or, for a template that is a fragment, the fragment) as an HTML answer."""
    html = _env.get_template(template).render(request=request, me=who, path=request.url.path, **context)
    return HTMLResponse(html, status_code=code, headers=HEADERS)
