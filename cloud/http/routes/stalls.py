"""Market stalls (issue 21.6), for operators: HQ creates and lists stalls; a stall's sales, products and settlement.

- `POST /operator/stalls` (hq_admin; audited) `{stall_id, store_id, name, owner, commission_bp, monthly_fee_fen}`
  -> 201 the stall | 200 the same stall sent again | 409 the id is another stall's | 422 naming the wrong field.
- `GET /operator/stalls[?store_id=]`: the stalls the operator may see (a stall owner: their own only).
- `GET /operator/stalls/{stall_id}`, `.../products`, `.../sales?from&to`, `.../settlement?from&to[&format=csv]`
  (or `Accept: text/csv`): a stall owner only of their own stall (403 naming both stalls otherwise).
- `PUT /operator/stalls/{stall_id}/products/{sku}` `{name?, price_fen?}` (hq_admin or the stall's owner; audited):
  only a product of that stall (403 otherwise).
Days are chain days `YYYY-MM-DD`, both included. The decisions are in cloud/services/stalls.py and protocol/.
"""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.operators import require_operator
from cloud.http.parsing import read_json
from cloud.http.problems import HTTPProblem
from cloud.services.stalls import settlement_csv


def routes(services) -> list[tuple]:
    async def create(request):
        operator = await require_operator(request, services, "stalls.manage")
        stall, created = await services.stalls.create(operator, await read_json(request))
        return JSONResponse(stall, status_code=201 if created else 200)

    async def listed(request):
        operator = await require_operator(request, services, "stall.read")
        return JSONResponse({"stalls": await services.stalls.listed(operator, request.query_params.get("store_id") or None)})

    async def one(request):
        operator = await require_operator(request, services, "stall.read")
        return JSONResponse(await services.stalls.stall(operator, request.path_params["stall_id"]))

    async def products(request):
        operator = await require_operator(request, services, "stall.read")
        stall_id = request.path_params["stall_id"]
        await services.stalls.stall(operator, stall_id)
        return JSONResponse({"stall_id": stall_id, "products": services.stalls.products(stall_id)})

    async def sales(request):
        operator = await require_operator(request, services, "stall.read")
        q = request.query_params
        return JSONResponse(await services.stalls.sales(operator, request.path_params["stall_id"], q.get("from", ""),
                                               q.get("to", "")))

    async def settlement(request):
        operator = await require_operator(request, services, "stall.read")
        q = request.query_params
        fmt = q.get("format") or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")
        if fmt not in ("json", "csv"):
            raise HTTPProblem(422, "format: json or csv")
        answer = await services.stalls.settlement(operator, request.path_params["stall_id"], q.get("from", ""),
                                                  q.get("to", ""))
        if fmt == "csv":
            name = f"settlement-{answer['stall_id']}-{answer['from']}-{answer['to']}.csv"
            return Response(settlement_csv(answer), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return JSONResponse(answer)

    async def change_product(request):
        operator = await require_operator(request, services, "stall.products")
        p = request.path_params
        body = await read_json(request)
        return JSONResponse(await services.stalls.change_product(operator, p["stall_id"], p["sku"], body))

    return [("/operator/stalls", listed, ["GET"]), ("/operator/stalls", create, ["POST"]),
            ("/operator/stalls/{stall_id}", one, ["GET"]),
            ("/operator/stalls/{stall_id}/products", products, ["GET"]),
            ("/operator/stalls/{stall_id}/products/{sku}", change_product, ["PUT"]),
            ("/operator/stalls/{stall_id}/sales", sales, ["GET"]),
            ("/operator/stalls/{stall_id}/settlement", settlement, ["GET"])]
