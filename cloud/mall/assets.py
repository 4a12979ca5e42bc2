"""The mall's static assets (CSS, JS, icons), served by the cloud itself from `cloud/mall/static/`
(cloud/http/static_files.py: only the files there, read once)."""
from __future__ import annotations

from pathlib import Path

from cloud.http.static_files import static_routes

STATIC = Path(__file__).parent / "static"


def routes(services) -> list[tuple]:
    return static_routes("/mall/static", STATIC, "mall asset")
