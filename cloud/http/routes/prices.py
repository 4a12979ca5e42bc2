"""HQ's catalogue and prices, one product at a time (cloud/services/prices.py) and as a sheet (product_sheet.py).

Writes need `catalogue.change` (hq_admin) and are audited; reads of the price book and the version history need
`views.read`. Every refusal names the product (and store, row and column) that was wrong.
"""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.operators import require_operator
from cloud.http.parsing import checked_path, read_body, read_json
from cloud.http.problems import HTTPProblem
from cloud.services import product_sheet
from cloud.services.prices import Prices

ERRORS_SHOWN_MAX = 200  # of a bad sheet's errors, in one answer (the count says how many in all)


class _Admin:
    """The services' world admin as it is when called (wiring replaces it after the routes are made)."""

    def __init__(self, services) -> None:
        self.services = services

    def editing(self):
        return self.services.world_admin.editing()

    async def change(self, *args, **kwargs):
        return await self.services.world_admin.change(*args, **kwargs)


def _int_query(request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPProblem(422, f"{name}: a whole number is required, not {raw!r}")
    return int(raw)


def routes(services) -> list[tuple]:
    cloud = services.cloud
    prices = Prices(cloud, _Admin(services))

    async def put_product(request):
        checked_path(request.path_params)
        operator = await require_operator(request, services, "catalogue.change")
        answer = await prices.put_product(request.path_params["sku"], await read_json(request), operator)
        return JSONResponse(answer, status_code=201 if answer["created"] else 200)

    async def product_prices(request):
        checked_path(request.path_params)
        await require_operator(request, services, "views.read")
        return JSONResponse(prices.prices_of(request.path_params["sku"]))

    async def put_store_price(request):
        checked_path(request.path_params)
        operator = await require_operator(request, services, "catalogue.change")
        p = request.path_params
        return JSONResponse(await prices.set_store_price(p["sku"], p["store_id"], await read_json(request), operator))

    async def delete_store_price(request):
        checked_path(request.path_params)
        operator = await require_operator(request, services, "catalogue.change")
        p = request.path_params
        return JSONResponse(await prices.drop_store_price(p["sku"], p["store_id"], operator))

    async def post_price_change(request):
        checked_path(request.path_params)
        operator = await require_operator(request, services, "catalogue.change")
        status, answer = await prices.schedule(request.path_params["sku"], await read_json(request), operator)
        return JSONResponse(answer, status_code=status)

    async def delete_price_change(request):
        checked_path(request.path_params)
        operator = await require_operator(request, services, "catalogue.change")
        p = request.path_params
        return JSONResponse(await prices.cancel(p["sku"], p["change_id"], operator))

    async def versions(request):
        await require_operator(request, services, "views.read")
        sku = request.query_params.get("sku") or None
        if sku is not None:
            checked_path({"sku": sku})
        return JSONResponse(await prices.versions(_int_query(request, "limit", 50) or 50,
                                                  _int_query(request, "before", None), sku))

    async def export(request):
        await require_operator(request, services, "views.read")
        kind = request.query_params.get("format", "csv")
        chain = cloud.world.catalogue.at(cloud.now_ms(), "")  # the chain's prices in force now
        if kind == "csv":
            return Response(product_sheet.to_csv(chain), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="products.csv"'})
        if kind == "xlsx":
            return Response(product_sheet.to_xlsx(chain), media_type=product_sheet.XLSX_MEDIA,
                            headers={"Content-Disposition": 'attachment; filename="products.xlsx"'})
        raise HTTPProblem(422, f"format: csv or xlsx, not {kind!r}")

    async def import_sheet(request):
        operator = await require_operator(request, services, "catalogue.change")
        dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await read_body(request, product_sheet.SHEET_MAX_BYTES)
        try:
            if media in ("text/csv", "text/plain"):
                rows = product_sheet.rows_from_csv(raw)
            elif media == product_sheet.XLSX_MEDIA:
                rows = product_sheet.rows_from_xlsx(raw)
            else:
                raise HTTPProblem(415, f"send the sheet as text/csv or {product_sheet.XLSX_MEDIA}, not {media!r}")
            async with prices.editing():  # checked against, and applied to, the same (newest) catalogue
                preview, errors, after = product_sheet.parse(rows, cloud.world.catalogue)
                if dry_run:
                    return JSONResponse({"dry_run": True, "valid": not errors, "rows": preview,
                                         "errors": errors[:ERRORS_SHOWN_MAX], "error_count": len(errors)})
                if errors or after is None:
                    first = errors[0]
                    where = f"row {first['row']}" + (f", column {first['column']}" if first["column"] else "")
                    raise HTTPProblem(422, f"sheet: {len(errors)} bad cell(s), nothing was applied; first: {where}: "
                                           f"{first['detail']}", errors=errors[:ERRORS_SHOWN_MAX],
                                      error_count=len(errors))
                before = cloud.world.catalogue.by_sku
                repriced = {p.sku for p in after.by_sku.values() if p.sku not in before
                            or (p.price_fen, p.member_prices) != (before[p.sku].price_fen, before[p.sku].member_prices)}
                answer = await services.world_admin.change("catalogue", after.to_data(), "import", by=operator,
                                                           locked=True, prices=prices.chain_set_now(repriced))
        except product_sheet.SheetError as exc:
            raise HTTPProblem(422, f"sheet: {exc}") from None
        return JSONResponse({**answer, "dry_run": False, "rows": preview})

    return [("/products/versions", versions, ["GET"]), ("/products/export", export, ["GET"]),
            ("/products/import", import_sheet, ["POST"]), ("/products/{sku}", put_product, ["PUT"]),
            ("/products/{sku}/prices", product_prices, ["GET"]),
            ("/products/{sku}/store-prices/{store_id}", put_store_price, ["PUT"]),
            ("/products/{sku}/store-prices/{store_id}", delete_store_price, ["DELETE"]),
            ("/products/{sku}/price-changes", post_price_change, ["POST"]),
            ("/products/{sku}/price-changes/{change_id}", delete_price_change, ["DELETE"])]
