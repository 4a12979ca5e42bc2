"""The customers' mall: a mobile-first web shop served by the cloud at `/mall` (server-rendered Jinja2, plain JS).

Every customer action goes through the public JSON API (the page's JS calls it with the customer's session); pages
are rendered from the same service calls the public read endpoints make (catalogue, stores, stock). One routes
module per area (browse, buy, account, ...) is listed in `cloud/mall/routes.py`; one template per page.
"""
