"""A market stall's own online shop under the chain's mall (issue 21.6): `/mall/stalls/{stall_id}` lists the
stall's products sold online, as the mall's shelf tiles (cloud/mall/shelf.py), priced like every mall page (list
price, and a signed-in member's level price). Only products whose `stall` is this stall are shown; an unknown
stall is the mall's 404 page. Buying goes through the mall's one cart and checkout, like any product."""
from __future__ import annotations

from cloud.mall import pages, shelf
from cloud.mall.pages import mall_error, mall_page


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def stall_page(request):
        stall_id = request.path_params["stall_id"]
        w = pages.i18n.words(pages.lang_of(request))
        stall = await services.stalls.public(stall_id)
        if stall is None:
            return mall_error(request, services, 404, w["page_missing"])
        level = await pages.level_of(services, await pages.member_of(request, services))
        tiles = [shelf.tile(p, level) for p in cloud.world.catalogue.by_sku.values()
                 if p.stall == stall_id and "online" in p.channels]
        store = cloud.world.stores.get(stall["store_id"])
        heading = f"{stall['name']} · {store.name if store is not None else stall['store_id']}"
        return mall_page(request, services, "list.html", {"heading": heading, "tiles": tiles}, title=stall["name"])

    return [("/mall/stalls/{stall_id}", stall_page, ["GET"])]
