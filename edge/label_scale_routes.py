"""`GET /label-scales` on the box: every label scale's state, the PLU table version it holds against the one it
should, the last push, and the labels it reported printing lately (edge/label_scales.py). Read-only: what the
scales hold follows the catalogue and the markdowns (`LabelScales.push_prices`), never a request here."""
from __future__ import annotations

from starlette.routing import Route


def routes(box, endpoint) -> list[Route]:
    async def label_scales(request, body):
        scales = box.label_scales
        return {"store_id": box.store_id, "scales": scales.health(), "overrides": scales.overrides,
                "markdowns": {sku: m.price_fen for sku, m in scales.markdowns.items()},
                "skipped": list(scales.skipped)}

    return [Route("/label-scales", endpoint(label_scales), methods=["GET"])]
