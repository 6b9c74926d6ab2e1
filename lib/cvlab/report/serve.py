"""`cvlab serve`: the workspace on localhost, so the open leaderboard page polls its live data.

The standard library's ThreadingHTTPServer is enough here (one user, a few small files every
couple of seconds); every answer says `no-store`, so the page and `live.json` are never stale.
The workspace root is served, so the page's links to run folders, logs and figures work.
"""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cvlab.report.live_data import write_live
from cvlab.report.page import ensure_leaderboard_page
from cvlab.workspace import Workspace


class NoCacheHandler(SimpleHTTPRequestHandler):
    """Files of the served folder, never cached, without a log line per request."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store, must-revalidate")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass  # a poll every 2 s would flood the terminal


def make_server(ws: Workspace, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server of `ws.root` (port 0: a free one), after the live data is brought up to date:
    runs of a driver that died turn `interrupted`, and the page exists."""
    ensure_leaderboard_page(ws)
    write_live(ws)
    handler = functools.partial(NoCacheHandler, directory=str(ws.root))
    return ThreadingHTTPServer((host, port), handler)


def page_url(server: ThreadingHTTPServer, ws: Workspace) -> str:
    host, port = server.server_address[:2]
    rel = Path(ws.leaderboard_page).relative_to(ws.root).as_posix()
    return f"http://{host}:{port}/{rel}"


def serve(out: str | Path | Workspace = ".", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the workspace `out` until Ctrl-C, printing the page's address."""
    ws = out if isinstance(out, Workspace) else Workspace.at(out)
    server = make_server(ws, host, port)
    print(f"Serving {ws.root} — open {page_url(server, ws)} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
