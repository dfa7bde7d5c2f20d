"""The smallest WSGI application that stands for a real one in
scripts/webbench: `GET /?size=N&work_us=W` burns W µs of CPU (a busy loop on
the monotonic clock, as template rendering or a query would cost) and
answers N bytes."""
import time

_BODIES = {}


def app(environ, start_response):
    params = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    try:
        size = min(int(params.get("size", "1024")), 1 << 20)
        work_us = min(int(params.get("work_us", "0")), 1_000_000)
    except ValueError:
        start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", "12")])
        return [b"bad request\n"]
    if work_us > 0:
        end = time.perf_counter() + work_us / 1e6
        while time.perf_counter() < end:
            pass
    body = _BODIES.get(size)
    if body is None:
        body = _BODIES[size] = b"x" * size
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return [body]
