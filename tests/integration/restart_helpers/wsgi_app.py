"""The WSGI app the restart tests run under gunicorn (sync workers).

    GET /                200, body JSON {"pid": <arbiter pid>, "worker": <worker pid>}
    GET /slow?ms=N&id=X  the same after N ms; logs "slow-begin"/"slow-end" (with id, master)

"pid" is the arbiter's (the worker's parent): the process graceinit started, i.e. the
generation. RESTART_TEST_LOG names the event log.
"""
import json
import os
import sys
import time
from urllib.parse import parse_qsl

# tests/helpers/events.py, imported as a top-level module (stdlib only, works under -S)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "helpers"))
from events import emit  # noqa: E402

LOG = os.environ.get("RESTART_TEST_LOG")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    params = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    master = os.getppid()
    if path == "/slow":
        ms = float(params.get("ms", "1000"))
        if LOG:
            emit(LOG, "gunicorn", "slow-begin", id=params.get("id"), master=master)
        time.sleep(min(ms, 30000) / 1000.0)
        if LOG:
            emit(LOG, "gunicorn", "slow-end", id=params.get("id"), master=master)
    body = json.dumps({"pid": master, "worker": os.getpid(), "path": path,
                       "id": params.get("id")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Pid", str(master))])
    return [body]
