"""Rendering a mall page: the templates, the customer's language, session and chosen store read from the request,
and `mall_page(...)`, which every area's routes call with their template and its values.

Guarantees:
- The session is the public API's own: the browser keeps the token from `POST /auth/sessions` (localStorage for
  the JS's API calls, and the `mall_session` cookie so a server-rendered page can show the member's own prices);
  the cookie is checked exactly as the API checks a Bearer token (`identity.member_of`), never trusted.
- A page that cannot be shown answers an HTML page with a sentence (never raw JSON): `mall_error(...)`.
- The language is `?lang=` (remembered in the `mall_lang` cookie), else the cookie, else Simplified Chinese.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from cloud.mall import i18n, problems

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters.update(yuan=i18n.yuan, kg=i18n.kg, china_time=i18n.china_time)
LANG_COOKIE, SESSION_COOKIE, STORE_COOKIE = "mall_lang", "mall_session", "mall_store"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
TOKEN_MAX_CHARS = 200  # a session token is far shorter; a longer cookie is not looked up


def lang_of(request: Request) -> str:
    return i18n.lang_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def store_of(request: Request, services) -> str | None:
    """The store the customer chose (cookie), if it is one of the chain's."""
    chosen = request.cookies.get(STORE_COOKIE)
    return chosen if chosen in services.cloud.world.stores else None


async def member_of(request: Request, services) -> str | None:
    """The signed-in member of the `mall_session` cookie, checked like a Bearer token (None: not signed in)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > TOKEN_MAX_CHARS:
        return None
    return await services.identity.member_of(token)


async def level_of(services, member: str | None) -> str | None:
    """The member's level for prices (the same as the API's member pricing; None: list prices)."""
    return await services.orders.member_pricing.level(member) if member else None


def mall_page(request: Request, services, template: str, values: dict | None = None, status: int = 200,
              title: str = "") -> HTMLResponse:
    """`template` (one per page, extending base.html) with the page's `values` and what every page shows: the words
    `w` in the customer's language, the chosen store, the current path (for the nav and the language switch)."""
    lang = lang_of(request)
    store_id = store_of(request, services)
    context = {"lang": lang, "w": i18n.words(lang), "path": request.url.path, "title": title,
               "store": services.cloud.world.stores.get(store_id) if store_id else None,
               "shelves": list(i18n.SHELVES), "problems": problems.for_page(), **(values or {})}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status,
                                          headers={"Cache-Control": "no-store"})
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=COOKIE_MAX_AGE_S, path="/mall", samesite="lax")
    return response


def mall_error(request: Request, services, status: int, message: str) -> HTMLResponse:
    """An error as a page with a sentence and the way home (the mall never shows a problem body raw)."""
    return mall_page(request, services, "error.html", {"message": message}, status=status, title=message)
