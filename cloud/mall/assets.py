"""The mall's static assets (CSS, JS, icons), served by the cloud itself: no CDN, no build step. Only files that
are in `cloud/mall/static/` are served (the set is read once), so a path can never reach outside it."""
from __future__ import annotations

from pathlib import Path

from starlette.responses import Response

from cloud.http.problems import HTTPProblem

STATIC = Path(__file__).parent / "static"
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
CACHE = "public, max-age=300"  # short: a deploy's new assets reach phones within minutes


def served() -> dict[str, tuple[bytes, str]]:
    return {p.name: (p.read_bytes(), TYPES[p.suffix]) for p in STATIC.iterdir() if p.suffix in TYPES}


def routes(services) -> list[tuple]:
    files = served()

    async def asset(request):
        name = request.path_params["name"]
        if name not in files:
            raise HTTPProblem(404, f"no mall asset {name[:60]!r}")
        body, kind = files[name]
        return Response(body, media_type=kind, headers={"Cache-Control": CACHE})

    return [("/mall/static/{name}", asset, ["GET"])]
