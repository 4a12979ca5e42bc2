"""The cashier's till page (issue 19): `GET /till/{lane}` on the box's own HTTP server, driving the lane API.

Server-rendered (Jinja2 templates, `templates/`), plain JS and CSS served by the box (`static/`, no CDN, no build
step); live cart, scale and connection state by server-sent events. Pure view code in `view.py`, `lines.py` and
`i18n.py` (no I/O); the HTTP shell in `routes.py`.
"""
