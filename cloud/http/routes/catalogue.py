"""The catalogue and the promotion book: anyone reads products; an hq_admin replaces products and the rule book."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import WORLD_BODY_MAX_BYTES, read_json
from cloud.http.problems import HTTPProblem


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def products(request):
        # the chain's prices in force now (a scheduled chain change counts from its moment: price_book)
        return JSONResponse({"products": cloud.world.catalogue.at(cloud.now_ms(), "").to_data(),
                             "rule_book_version": cloud.world.rule_book.version})

    async def put_products(request):
        operator = await require_operator(request, services, "catalogue.change")
        data = await read_json(request, WORLD_BODY_MAX_BYTES)
        if not isinstance(data.get("products"), list):
            raise HTTPProblem(422, "products: a list of products is required")
        return JSONResponse(await services.world_admin.change("catalogue", data["products"],
                                                              data.get("reason", "operator"), by=operator))

    async def put_rule_book(request):
        operator = await require_operator(request, services, "rule_book.change")
        return JSONResponse(await services.world_admin.change("rule_book", await read_json(request, WORLD_BODY_MAX_BYTES),
                                                              "operator",
                                                              by=operator))

    return [("/products", products, ["GET"]), ("/products", put_products, ["PUT"]),
            ("/rule-book", put_rule_book, ["PUT"])]
