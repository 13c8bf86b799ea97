"""The backends of the drain benchmark: one tiny app, as WSGI (gunicorn) and ASGI (uvicorn).

    gunicorn -k gthread ... benchmarks.drain_apps:wsgi
    uvicorn ... benchmarks.drain_apps:asgi
"""

from __future__ import annotations

import os

BODY = f"ok {os.environ.get('BENCH_NAME', '?')}\n".encode()


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
