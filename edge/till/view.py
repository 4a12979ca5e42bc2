"""What the till page shows, worked out from what the box knows: the scale's reading, the connection banner, the
produce keys and the receipt's QR. Pure (the moment and the readings are passed in): unit-tested without a box."""
from __future__ import annotations

import io

import qrcode
import qrcode.image.svg

from edge.devices.events import ScaleStatus, Weight
from edge.till.i18n import kg

MAX_PRODUCE_KEYS = 120  # a screenful of keys per category; the rest are sold by their label or PLU scan


def scale_view(state: str, reading: object | None, capacity_g: int) -> dict:
    """`state`: the scale driver's ('ok', 'down', ...); `reading`: its latest Weight or ScaleStatus (None: none yet).
    Overload is the scale's own flag or a weight over capacity; a status frame shows no weight."""
    if state == "absent":
        return {"present": False}
    view: dict[str, object] = {"present": True, "connected": state in ("ok", "degraded"), "kg": None, "stable": False,
            "tare": False, "overload": False}
    if isinstance(reading, Weight):
        view.update(kg=kg(reading.grams), stable=reading.stable, tare=reading.net,
                    overload=reading.grams > capacity_g)
    elif isinstance(reading, ScaleStatus):
        view.update(stable=not (reading.motion or reading.over_capacity), tare=reading.net,
                    overload=reading.over_capacity)
    return view


def status_view(online: bool, outbox_depth: int, oldest_sale_ms: int | None, now_ms: int) -> dict:
    """The banner: online or not, events waiting for the cloud, and how long the oldest unsynced sale has waited."""
    age_s = max(0, (now_ms - oldest_sale_ms) // 1000) if oldest_sale_ms is not None else None
    return {"online": online, "outbox_depth": outbox_depth, "oldest_age_s": age_s}


def produce_keys(products) -> dict[str, list[dict]]:
    """Products sold by the kg with a PLU, by category (the category grid), in PLU order."""
    keys: dict[str, list[dict]] = {}
    for p in sorted((p for p in products if p.weighed and p.plu), key=lambda p: (p.category, p.plu)):
        row = keys.setdefault(p.category, [])
        if len(row) < MAX_PRODUCE_KEYS:
            row.append({"sku": p.sku, "plu": p.plu, "name": p.name, "price_fen": p.price_fen})
    return keys


def qr_svg(text: str) -> str:
    """`text` as a QR code, an inline SVG element (no image file, nothing fetched)."""
    out = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg"):]  # the element only: no XML declaration inside HTML
