"""The back office's front door: the sign-in page, the home page (who is signed in, the areas they may open, the
link to the operations console) and the office's static assets (cloud/office/static/, served by the cloud).

Signing in and out is the operator API's (`POST /operator/sessions`, `DELETE /operator/sessions`), called by the
page's script; nothing here creates or holds a session."""
from __future__ import annotations

from pathlib import Path

from cloud.http.static_files import static_routes
from cloud.office import i18n
from cloud.office.pages import lang_of, office_operator, office_page, signed_in

STATIC = Path(__file__).parent / "static"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: an office path only (never another site)."""
    return value if value and value.startswith("/office") and not value.startswith("//") else "/office"


def routes(services) -> list[tuple]:
    async def home(request):
        operator = await office_operator(request, services, None)  # every account has a home: its own areas
        w = i18n.words(lang_of(request))
        return office_page(request, services, "home.html", title=w["office.home"], operator=operator)

    async def signin_page(request):
        w = i18n.words(lang_of(request))
        return office_page(request, services, "signin.html",
                           {"next": safe_next(request.query_params.get("next"))}, title=w["office.sign_in"],
                           operator=await signed_in(request, services))

    return [("/office", home, ["GET"]), ("/office/signin", signin_page, ["GET"]),
            *static_routes("/office/static", STATIC, "office asset")]
