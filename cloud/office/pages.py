"""Rendering a back-office page: the templates, the operator's language and session read from the request, and
`office_page(...)`, which every area's handlers call with their template and its values.

Guarantees:
- The session is the operator API's own: the sign-in page's script signs in through `POST /operator/sessions` and
  keeps the token in sessionStorage (for the script's API calls, which write) and in the `office_session` cookie
  (path /office, SameSite=Strict) so that a page can be rendered with the operator's data. The cookie is checked
  exactly as the API checks a Bearer token (`Operators.session`), and only ever lets a page be *read*: every
  change goes through the operator JSON API with the Bearer token, which validates, audits and decides by role.
- `await office_operator(request, services, permission)` answers the signed-in operator whose role allows the
  permission (on `store_id`); otherwise it stops the handler with a page: not signed in -> 303 to the sign-in page
  (and back after), not allowed -> 403 with the sentence why. Area routes are wrapped by `cloud/office/routes.py`
  so that these stops become responses.
- A page never shows raw JSON or a problem body: errors are sentences in the operator's language.
- The language is `?lang=` (remembered in the `office_lang` cookie), else the cookie, else Simplified Chinese.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from cloud.office import i18n
from cloud.services.operators import Operator
from protocol import roles

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters.update(yuan=i18n.yuan, local_time=i18n.local_time)
LANG_COOKIE, SESSION_COOKIE = "office_lang", "office_session"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
TOKEN_MAX_CHARS = 200  # a session token is far shorter; a longer cookie is not looked up


class OfficeStop(Exception):
    """Stops a page handler with a response of its own (a redirect to sign in, a refusal page)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def lang_of(request: Request) -> str:
    return i18n.lang_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


async def signed_in(request: Request, services) -> Operator | None:
    """The operator of the `office_session` cookie, checked like a Bearer token (None: not signed in)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > TOKEN_MAX_CHARS:
        return None
    return await services.operators.session(token)


def sign_in_path(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/office/signin?next=" + quote(here, safe="/")


async def office_operator(request: Request, services, permission: roles.Permission | None,
                          store_id: str | None = None) -> Operator:
    """The signed-in operator if their role allows `permission` (on `store_id`; None: any signed-in operator);
    else the handler stops with a 303 to the sign-in page or a 403 page saying why."""
    operator = await signed_in(request, services)
    if operator is None:
        raise OfficeStop(RedirectResponse(sign_in_path(request), status_code=303))
    why = None if permission is None else roles.refusal(operator.role, permission, operator.store_id, store_id)
    if why is not None:
        w = i18n.words(lang_of(request))
        raise OfficeStop(office_page(request, services, "refused.html",
                                     {"why": f"{w['office.refused']} ({operator.username}: {why})"},
                                     status=403, title=w["office.refused_title"], operator=operator))
    return operator


def may(operator: Operator | None, permission: roles.Permission | None, store_id: str | None = None) -> bool:
    """Whether the page should offer an action (the API decides again when it is taken); None: any operator."""
    return operator is not None and (permission is None
                                     or roles.allowed(operator.role, permission, operator.store_id, store_id))


def nav_for(operator: Operator | None) -> list[tuple[str, str]]:
    from cloud.office.routes import NAV  # the areas' list; imported late (routes imports every area)
    return [(path, word) for path, word, permission in NAV if may(operator, permission)]


def office_page(request: Request, services, template: str, values: dict | None = None, status: int = 200,
                title: str = "", operator: Operator | None = None) -> HTMLResponse:
    """`template` (extending base.html) with the page's `values` and what every page shows: the words `w` in the
    operator's language, the operator and the areas they may open (the nav), the current path."""
    lang = lang_of(request)
    context = {"lang": lang, "w": i18n.words(lang), "path": request.url.path, "title": title, "operator": operator,
               "role_name": i18n.role(operator.role if operator else None, lang), "nav": nav_for(operator),
               "may": lambda permission, store_id=None: may(operator, permission, store_id), **(values or {})}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status,
                                          headers={"Cache-Control": "no-store"})
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=COOKIE_MAX_AGE_S, path="/office", samesite="strict")
    return response
