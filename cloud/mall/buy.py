"""Buying in the mall: the cart, checkout, the customer's orders and the live order page.

Guarantees:
- The cart lives in the browser (localStorage); the page prices it with the public `POST /cart/price` (the
  promotion book, the member's level, each saving explained, near-miss hints, the delivery fee), places the order
  with the public `POST /orders` and pays with `POST /orders/{id}/pay`: no private back door.
- The order page is rendered for the member whose session the `mall_session` cookie carries, through the same
  service call `GET /orders/{id}` makes (another member's order answers "no such order", as the API's 404 does);
  its pickup code is drawn as an inline SVG QR (its payload is the code a till scans: `POST /pickups/{code}`), and
  the page's JS follows `GET /orders/{id}/events` (server-sent events) and re-reads `GET /orders/{id}`.
- Without a session the customer is sent to sign in and back.
"""
from __future__ import annotations

import json

from starlette.responses import RedirectResponse

from cloud.mall import pages
from cloud.mall.i18n import words
from cloud.mall.pages import mall_error, mall_page
from cloud.mall.view import order_map, qr_svg
from cloud.services.verdicts import Refusal


def routes(services) -> list[tuple]:
    def to_signin(request):
        return RedirectResponse(f"/mall/signin?next={request.url.path}", status_code=303)

    async def cart_page(request):
        return mall_page(request, services, "cart.html", {}, title=words(pages.lang_of(request))["cart"])

    async def checkout_page(request):
        w = words(pages.lang_of(request))
        return mall_page(request, services, "checkout.html", {
            "stores": sorted(services.cloud.world.stores.values(), key=lambda s: s.store_id)}, title=w["checkout"])

    async def orders_page(request):
        # the list itself is read by the page's JS from the public GET /members/{id}/orders; stores by name
        names = {s.store_id: s.name for s in services.cloud.world.stores.values()}
        return mall_page(request, services, "orders.html", {"store_names": names},
                         title=words(pages.lang_of(request))["orders"])

    async def order_page(request):
        member = await pages.member_of(request, services)
        if member is None:
            return to_signin(request)
        order_id = request.path_params["order_id"]
        w = words(pages.lang_of(request))
        try:
            order = await services.orders.view(order_id, member)  # what GET /orders/{id} answers this member
            row = await services.orders.get(order_id, member)
        except Refusal:
            return mall_error(request, services, 404, f"{w['order']} {order_id[:40]}: {w['page_missing']}")
        world = services.cloud.world
        store = world.stores.get(order["stores"][0]) if order["stores"] else None
        location = json.loads(row["location"]) if row["location"] else None
        return mall_page(request, services, "order.html", {
            "order": order, "qr": qr_svg(order["pickup_code"]) if order.get("pickup_code") else "",
            "wallet_qr": qr_svg(order["payment"]["pay"]["code_url"]) if (order.get("payment") or {}).get("pay")
            else "", "order_store": store, "map": order_map(store, location) if order["fulfilment"] == "delivery" and store
            else None, "order_json": order}, title=f"{w['order']} {order_id}")

    return [("/mall/cart", cart_page, ["GET"]), ("/mall/checkout", checkout_page, ["GET"]),
            ("/mall/orders", orders_page, ["GET"]), ("/mall/orders/{order_id}", order_page, ["GET"])]
