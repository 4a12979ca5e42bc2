"""A bare Starlette JSON POST endpoint: the yardstick for the load client's own ceiling."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request):
    body = await request.json()
    return JSONResponse({"ok": True, "n": len(body)}, status_code=201)


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
