"""The dashboard as an operator uses it, in chromium: sign in with a token, create an HA route
through the five steps (a refused value shown next to its field first), toggle it, find the event,
open its diagram (before and after the agents report), run route explain, sign out; an auditor
sees no write control; a forged POST changes nothing; setup keys and groups."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from meshroute.core.status import RouteState, RouteUse, StatusReport
from meshroute.server.clock import utcnow
from tests.browser.conftest import Mesh, shot, sign_in


def routes(mesh: Mesh) -> list[dict[str, object]]:
    return list(mesh.api("GET", "routes"))


def test_an_operator_creates_toggles_watches_and_explains_a_route(page: Page, mesh: Mesh) -> None:
    sign_in(page, mesh)
    assert mesh.token not in page.content()
    page.click("#add-route")
    expect(page.locator("#step-1 legend")).to_contain_text("Define the network")
    for step in ("Choose routing peers", "Configure route settings", "Set distribution", "Save"):
        expect(page.locator("fieldset.step legend", has_text=step)).to_be_visible()

    # 1-5, with a network the API refuses: the message next to its field, nothing saved
    page.fill("#network_id", "office")
    page.fill("#description", "Office LAN access")
    page.fill("#network", "10.77.0.300/24")
    page.check(f"#peer_groups input[value='{mesh.groups['office-gateways']}']")
    page.fill("#metric", "100")
    page.check(f"#groups input[value='{mesh.groups['remote-workers']}']")
    page.click("#save-route")
    expect(page.locator("#error-network")).to_have_text("invalid network 10.77.0.300/24")
    expect(page.locator(".field.invalid #network")).to_be_visible()
    assert page.input_value("#network_id") == "office"  # what was typed is kept
    shot(page, "route-form-error")
    assert routes(mesh) == []

    page.fill("#network", "10.77.0.0/24")
    page.click("#save-route")
    page.wait_for_url(re.compile(r".*/routes/[a-z0-9]+$"))
    (route,) = routes(mesh)
    assert route["network"] == "10.77.0.0/24" and route["peer_groups"] == [mesh.groups["office-gateways"]]
    assert route["metric"] == 100 and route["enabled"] is True and route["masquerade"] is True

    # the diagram: both routing peers, the three clients, no data yet
    diagram = page.locator("svg.diagram")
    expect(diagram).to_be_visible()
    for name in ("gw-1", "gw-2", "alice-laptop", "bob-laptop", "carol-laptop"):
        expect(diagram.locator("text", has_text=name).first).to_be_visible()
    expect(page.locator("#no-data")).to_contain_text("No data yet")
    shot(page, "route-no-data")

    # toggle it from the list (htmx swaps the button in place)
    page.click("a[href='/routes']")
    toggle = page.locator(f"#toggle-{route['id']} button")
    expect(toggle).to_have_text("Enabled")
    toggle.click()
    expect(page.locator(f"#toggle-{route['id']} button")).to_have_text("Disabled")
    assert routes(mesh)[0]["enabled"] is False
    page.locator(f"#toggle-{route['id']} button").click()
    expect(page.locator(f"#toggle-{route['id']} button")).to_have_text("Enabled")

    # the events: created, then updated twice; filtered by the route
    page.click("nav a[href='/events']")
    page.select_option("#route", str(route["id"]))
    page.click("#event-filter button")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Route updated")
    expect(rows.last).to_contain_text("Route created")
    shot(page, "events")

    # the agents report: the diagram shows who routes through whom
    report_routes(mesh, str(route["id"]))
    page.goto(f"{mesh.url}/routes/{route['id']}")
    expect(page.locator("svg.diagram path.edge.routing")).to_have_count(2)
    expect(page.locator("#clients")).to_contain_text("routing")
    expect(page.locator("#no-data")).to_have_count(0)
    expect(page.locator("#route-events tbody tr")).to_have_count(3)
    shot(page, "route")

    # more routes around it: a wider one, a narrower disabled one, an exit node to select by hand
    more_routes(mesh)
    page.click("nav a[href='/routes']")
    expect(page.locator("#overlaps tbody tr")).to_have_count(1)
    expect(page.locator("#overlaps")).to_contain_text("10.77.0.0/24 is inside 10.77.0.0/16")
    expect(page.locator("#routes")).to_contain_text("exit node")
    shot(page, "routes")

    # route explain, for a client and an address of the route
    page.click("nav a[href='/explain']")
    page.select_option("#peer", mesh.peers["alice-laptop"])
    page.fill("#destination", "10.77.0.20")
    page.click("#run-explain")
    expect(page.locator("#verdict")).to_contain_text(
        "10.77.0.20 goes through route office (10.77.0.0/24) via routing peer gw-2"
    )
    uses = page.locator("#explain-routes tbody tr td:nth-child(4)")
    expect(uses).to_have_text(["used", "shadowed", "not selected"])
    expect(page.locator("#explain-not-received")).to_contain_text("the route is disabled")
    page.fill("#destination", "not a destination!")
    page.click("#run-explain")
    expect(page.locator("#error-destination")).to_contain_text(
        "destination should be an ip address or a domain name"
    )
    page.fill("#destination", "10.77.0.20")
    page.click("#run-explain")
    expect(page.locator("#verdict")).to_be_visible()
    shot(page, "explain")

    # sign out: the session is gone
    page.click("#signout button")
    page.wait_for_url(f"{mesh.url}/signin")
    page.goto(f"{mesh.url}/routes")
    assert page.url.startswith(f"{mesh.url}/signin")


def more_routes(mesh: Mesh) -> None:
    gateways, workers = mesh.groups["office-gateways"], mesh.groups["remote-workers"]
    base = {"masquerade": True, "keep_route": False, "groups": [workers], "enabled": True}
    for body in (
        {"network_id": "campus", "network": "10.77.0.0/16", "peer": mesh.peers["gw-1"], "metric": 10},
        {
            "network_id": "lab",
            "network": "10.77.0.0/25",
            "peer": mesh.peers["gw-1"],
            "metric": 1,
            "enabled": False,
        },
        {
            "network_id": "internet",
            "network": "0.0.0.0/0",
            "peer_groups": [gateways],
            "metric": 9999,
            "skip_auto_apply": True,
            "description": "Exit node, selected by hand",
        },
    ):
        mesh.api("POST", "routes", {**base, **body})


def report_routes(mesh: Mesh, route_id: str) -> None:
    """alice and bob use gw-2 now, as their agents would report it; carol has not reported."""
    gw1, gw2 = mesh.peers["gw-1"], mesh.peers["gw-2"]
    with mesh.services() as services:
        for name in ("gw-1", "gw-2", "alice-laptop", "bob-laptop"):
            services.peers.set_connected(mesh.peers[name], utcnow())
        with services.uow.read(mesh.api("GET", "accounts")[0]["id"]) as tx:
            clients = [tx.peers.get(mesh.peers[n]) for n in ("alice-laptop", "bob-laptop")]
        use = RouteUse(
            "office|10.77.0.0/24", (f"{route_id}:{gw1}", f"{route_id}:{gw2}"), gw2, RouteState.ROUTING
        )
        for peer in clients:
            assert peer is not None
            services.peers.report_status(peer, StatusReport((use,)))


def test_an_auditor_sees_no_write_control(page: Page, mesh: Mesh) -> None:
    token = mesh.auditor_token()
    sign_in(page, mesh, token)
    for path in ("/routes", "/groups", "/setup-keys", "/peers", "/events", "/explain"):
        page.goto(f"{mesh.url}{path}")
        forms = page.locator("form[method=post]")
        assert forms.count() == 1 and forms.first.get_attribute("action") == "/signout", path
        assert page.locator("a[href$='/edit'], a[href$='/delete'], #add-route, button.toggle").count() == 0, (
            path
        )
    if routes(mesh):
        page.goto(f"{mesh.url}/routes/{routes(mesh)[0]['id']}")
        assert page.locator("form[method=post]").count() == 1
        expect(page.locator("svg.diagram")).to_be_visible()
    page.goto(f"{mesh.url}/routes")
    shot(page, "routes-auditor")
    # and what it cannot see a control for, it cannot do either
    page.goto(f"{mesh.url}/routes/new")
    expect(page.locator(".notice.error")).to_have_text("permission denied")
    reply = page.request.post(f"{mesh.url}/groups", form={"name": "x", "csrf_token": csrf_of(page)})
    assert reply.status == 403 and "permission denied" in reply.text()


def csrf_of(page: Page) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_a_forged_post_changes_nothing(page: Page, mesh: Mesh) -> None:
    sign_in(page, mesh)
    group = mesh.groups["remote-workers"]
    before = mesh.api("GET", f"groups/{group}")
    target = f"{mesh.url}/groups/{group}/delete"
    for form, headers in (
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": csrf_of(page)}, {"Origin": "https://evil.example"}),
    ):
        reply = page.request.post(target, form=form, headers=headers, max_redirects=0)
        assert reply.status == 403, (form, headers)
        assert "this form was not sent by this dashboard" in reply.text()
    # without the session cookie (another site's page cannot send it: SameSite=Strict)
    reply = page.context.request.post(target, form={}, headers={"Cookie": ""}, max_redirects=0)
    assert reply.status in (303, 403)
    assert mesh.api("GET", f"groups/{group}") == before
    cookie = next(c for c in page.context.cookies() if c["name"] == "meshroute_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert mesh.token not in cookie["value"]


def test_setup_keys_shown_once_and_a_group_in_use_is_not_deleted(page: Page, mesh: Mesh) -> None:
    sign_in(page, mesh)
    page.goto(f"{mesh.url}/setup-keys")
    page.fill("#name", "laptops")
    page.check(f"#auto_groups input[value='{mesh.groups['remote-workers']}']")
    page.click("#key-form button[type=submit]")
    secret = page.locator("#secret").inner_text().strip()
    assert re.fullmatch(r"[0-9A-F-]{36}", secret), secret
    expect(page.locator("#copy-key")).to_be_visible()
    shot(page, "setup-keys")
    page.goto(f"{mesh.url}/setup-keys")
    assert secret not in page.content()
    row = page.locator("#setup-keys tr", has_text="laptops")
    row.locator("button", has_text="Revoke").click()
    expect(page.locator("#setup-keys tr", has_text="laptops")).to_contain_text("revoked")

    # a new group: the empty name is refused next to the field
    page.goto(f"{mesh.url}/groups")
    page.click("#group-form button[type=submit]")
    expect(page.locator("#error-name")).to_have_text("group name shouldn't be empty")
    # the distribution group of a route cannot go: the API's refusal, on the page
    if routes(mesh):
        page.locator(f"#group-{mesh.groups['remote-workers']} button", has_text="Delete").click()
        expect(page.locator("#refusal")).to_contain_text("was not deleted: group has been linked to route: ")
        shot(page, "groups")
