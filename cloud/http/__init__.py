"""The HTTP layer: the Starlette app, one routes module per resource, problem+json, request bodies, OpenAPI.
Only this layer knows status codes: services answer with verdicts and the routes translate them."""
