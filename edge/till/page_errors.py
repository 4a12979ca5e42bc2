"""The till page's refusals in the page's language (edge/till/refusals.py), around the lane app's endpoint wrapper
(edge/lanes.py): a problem+json answer of a page endpoint keeps its status and gains `code` (the stable refusal
code) and `detail_en` (the core's English sentence); its `detail` is the sentence in the page's language, which is
what the page shows. The JSON lane API's own routes do not pass through here: their detail stays English."""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from edge.till import refusals

PROBLEM = "application/problem+json"


def localising(endpoint, lang_of):
    """`endpoint` (the lane app's wrapper) whose problem answers are said in the request's page language."""
    def wrap(fn, body_cls=None, **kw):
        handler = endpoint(fn, body_cls, **kw)

        async def handle(request: Request):
            response = await handler(request)
            if response.status_code < 400 or not str(response.media_type or "").startswith(PROBLEM):
                return response
            body = json.loads(bytes(response.body))
            english = str(body.get("detail", ""))
            code, said = refusals.localised(english, lang_of(request))
            headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
            return JSONResponse({**body, "detail": said, "code": code, "detail_en": english},
                                status_code=response.status_code, media_type=PROBLEM, headers=headers or None)
        return handle
    return wrap
