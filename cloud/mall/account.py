"""Signing in to the mall: the page that asks for the phone and the one-time code. The page's JS calls the public
sign-in endpoints (`POST /auth/codes`, `POST /auth/sessions`, `DELETE /auth/sessions`); the cloud's simulated SMS
provider (or the real one) delivers the code. Nothing here holds a session: the browser keeps the API's token."""
from __future__ import annotations

from cloud.mall.pages import mall_page


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a mall path only (never another site)."""
    return value if value and value.startswith("/mall") and not value.startswith("//") else "/mall"


def routes(services) -> list[tuple]:
    async def signin_page(request):
        return mall_page(request, services, "signin.html", {"next": safe_next(request.query_params.get("next"))},
                         title="sign_in")

    return [("/mall/signin", signin_page, ["GET"])]
