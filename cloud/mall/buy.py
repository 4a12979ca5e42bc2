"""Buying in the mall: the cart, checkout, and the customer's orders with the live order page.

Guarantees:
- The cart lives in the browser (localStorage); the page prices it with the public `POST /cart/price` (the
  promotion book, the member's level, each saving explained, near-miss hints, the delivery fee) and places the
  order with the public `POST /orders`, paying with `POST /orders/{id}/pay`: no private back door.
- The order page reads `GET /orders/{id}` with the customer's session and follows `GET /orders/{id}/events`
  (server-sent events): another member's order is never shown (the API answers 404 as for an unknown one).
"""
from __future__ import annotations

from cloud.mall.pages import mall_page


def routes(services) -> list[tuple]:
    async def cart_page(request):
        return mall_page(request, services, "cart.html", {}, title="cart")

    return [("/mall/cart", cart_page, ["GET"])]
