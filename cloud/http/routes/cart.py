"""The cart's price before ordering (`POST /cart/price`): public, for anyone; with a member's session token the
member's level prices and their wallet's coupons may be named (cloud/services/cart_preview.py). Nothing is held."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.parsing import parse
from cloud.http.routes.auth import signed_in_member
from cloud.services.cart_preview import CartRequest, preview


def routes(services) -> list[tuple]:
    async def price_cart(request):
        # a session is optional, but one that is sent must be valid (401): a stale token never prices silently
        member = await signed_in_member(request, services) if request.headers.get("authorization") else None
        req = await parse(request, CartRequest, "cart")
        return JSONResponse(await preview(services, req, member))

    return [("/cart/price", price_cart, ["POST"])]
