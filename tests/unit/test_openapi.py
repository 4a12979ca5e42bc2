"""/openapi.json describes exactly the routes the app serves."""
from cloud.http.app import build_routes
from cloud.http.openapi import openapi_document


class _Services:
    cloud = None
    worker_id = "t"


def test_every_route_is_documented_and_every_documented_route_exists():
    served = {(r.path, m.lower()) for r in build_routes(_Services()) for m in r.methods if m != "HEAD"}
    documented = {(path, method) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert served == documented
