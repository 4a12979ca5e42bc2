"""The back office's shell rendered by its real routes over a stand-in of the services (a session table): not
signed in goes to sign-in and back, a role that may not open a page gets a 403 page saying why (never JSON), the
nav shows what the role may open, both languages, and only the office's own assets are served."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from cloud.http.problems import HTTPProblem, problem_response
from cloud.office import routes as office_routes
from cloud.office.home import safe_next
from cloud.office.pages import SESSION_COOKIE, office_operator, office_page
from cloud.services.operators import Operator

SESSIONS = {"hq": Operator("O-1", "anna", "hq_admin", None), "mgr": Operator("O-2", "bo", "store_manager", "S001"),
            "view": Operator("O-3", "cy", "viewer", None)}


class Services:
    class operators:
        @staticmethod
        async def session(token):
            return SESSIONS.get(token)


def client(extra: list | None = None) -> TestClient:
    services = Services()

    async def hq_only(request):
        operator = await office_operator(request, services, "catalogue.change")
        return office_page(request, services, "home.html", operator=operator)

    found = office_routes.routes(services) + [("/office/test-hq", office_routes._stops_answered(hq_only), ["GET"])]
    app = Starlette(routes=[Route(p, e, methods=m) for p, e, m in found],
                    exception_handlers={HTTPProblem: lambda request, exc: problem_response(exc)})
    return TestClient(app, follow_redirects=False)


def test_not_signed_in_goes_to_sign_in_and_comes_back():
    r = client().get("/office/test-hq?x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/office/signin?next=/office/test-hq%3Fx%3D1"
    page = client().get("/office/signin?next=/office/test-hq")
    assert page.status_code == 200 and 'data-next="/office/test-hq"' in page.text
    assert 'id="username"' in page.text and 'autocomplete="current-password"' in page.text


def test_an_unknown_or_too_long_cookie_is_not_signed_in():
    c = client()
    c.cookies.set(SESSION_COOKIE, "nobody")
    assert c.get("/office").status_code == 303
    c.cookies.set(SESSION_COOKIE, "x" * 500)
    assert c.get("/office").status_code == 303


def test_a_role_that_may_not_open_a_page_is_told_why_in_a_page():
    c = client()
    c.cookies.set(SESSION_COOKIE, "mgr")
    r = c.get("/office/test-hq")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "无权操作" in r.text and "store_manager" in r.text and "catalogue.change" in r.text
    c.cookies.set(SESSION_COOKIE, "hq")
    assert c.get("/office/test-hq").status_code == 200


def test_home_names_the_operator_and_their_role_in_either_language():
    c = client()
    c.cookies.set(SESSION_COOKIE, "mgr")
    zh = c.get("/office")
    assert zh.status_code == 200 and "bo · 店长 · S001" in zh.text and 'lang="zh-CN"' in zh.text
    assert 'href="/console"' in zh.text
    en = c.get("/office?lang=en")
    assert "bo · Store manager · S001" in en.text and 'lang="en"' in en.text
    assert "office_lang=en" in en.headers["set-cookie"]


def test_only_the_office_s_own_assets_are_served():
    c = client()
    assert c.get("/office/static/office.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/office/static/office.css").status_code == 200
    assert c.get("/office/static/..%2Fpages.py").status_code == 404
    assert c.get("/office/static/nothing.js").status_code == 404


def test_after_sign_in_only_an_office_path_is_followed():
    assert safe_next("/office/reports?x=1") == "/office/reports?x=1"
    for hostile in ("https://evil.example/", "//evil.example/office", "/mall", None, ""):
        assert safe_next(hostile) == "/office"


def test_a_stall_owner_has_a_home_with_only_their_areas():
    SESSIONS["stall"] = Operator("O-4", "di", "stall_owner", "S001")
    c = client()
    c.cookies.set(SESSION_COOKIE, "stall")
    home = c.get("/office")
    assert home.status_code == 200 and 'href="/office/stalls"' in home.text
    assert 'href="/console"' not in home.text and 'href="/office/stock"' not in home.text
