"""Pictures the order page draws, pure: the pickup code as a QR (inline SVG), and the delivery map's frame (the
store, the destination and, later, the rider, projected into one SVG viewBox the page's JS also uses)."""
from __future__ import annotations

import io

import qrcode
import qrcode.image.svg

MAP_W, MAP_H, MAP_PAD = 320, 200, 24  # the map's viewBox; padding keeps the markers inside the frame
MARGIN_DEG = 0.002  # about 200 m around the points, so a rider a little outside them is still on the map


def qr_svg(text: str) -> str:
    """`text` as a QR code, an inline SVG element (nothing fetched)."""
    out = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg"):]


def order_map(store, location: dict | None) -> dict:
    """The map's bounds around the store and the destination, and both points in viewBox coordinates; the page's JS
    places the rider with the same bounds (data attributes)."""
    points = [(store.lat, store.lon)] + ([(location["lat"], location["lon"])] if location else [])
    south = min(p[0] for p in points) - MARGIN_DEG
    north = max(p[0] for p in points) + MARGIN_DEG
    west = min(p[1] for p in points) - MARGIN_DEG
    east = max(p[1] for p in points) + MARGIN_DEG
    bounds = {"south": south, "north": north, "west": west, "east": east}
    return {"bounds": bounds, "w": MAP_W, "h": MAP_H, "store": project(bounds, store.lat, store.lon),
            "home": project(bounds, location["lat"], location["lon"]) if location else None}


def project(bounds: dict, lat: float, lon: float) -> dict:
    """(lat, lon) to the viewBox (north up), clamped to the frame."""
    x = MAP_PAD + (lon - bounds["west"]) / (bounds["east"] - bounds["west"]) * (MAP_W - 2 * MAP_PAD)
    y = MAP_PAD + (bounds["north"] - lat) / (bounds["north"] - bounds["south"]) * (MAP_H - 2 * MAP_PAD)
    return {"x": round(min(max(x, 0), MAP_W), 1), "y": round(min(max(y, 0), MAP_H), 1)}
