"""Static assets (CSS, JS, SVG) served by the cloud itself, for the mall and the back office: no CDN, no build step.

Only files that are in the given directory when the app starts are served (the set is read once, into memory), so
a path can never reach outside it; an unknown name is a 404 problem naming it."""
from __future__ import annotations

from pathlib import Path

from starlette.responses import Response

from cloud.http.problems import HTTPProblem

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
CACHE = "public, max-age=300"  # short: a deploy's new assets reach browsers within minutes


def served(directory: Path) -> dict[str, tuple[bytes, str]]:
    return {p.name: (p.read_bytes(), TYPES[p.suffix]) for p in directory.iterdir() if p.suffix in TYPES}


def static_routes(prefix: str, directory: Path, what: str) -> list[tuple]:
    """`GET {prefix}/{name}` for every asset in `directory`; `what` names them in a 404 ("mall asset")."""
    files = served(directory)

    async def asset(request):
        name = request.path_params["name"]
        if name not in files:
            raise HTTPProblem(404, f"no {what} {name[:60]!r}")
        body, kind = files[name]
        return Response(body, media_type=kind, headers={"Cache-Control": CACHE})

    return [(f"{prefix}/{{name}}", asset, ["GET"])]
