"""The HTTP server: one thread per connection, keep-alive, fault injection and the call log.

Provider specifics live in the ApiModules (see routing.py); this module only knows HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .anthropic_api import AnthropicApi, Batch
from .config import Call, EmulatorConfig, Fault
from .gemini_api import GeminiApi, GeminiJob
from .routing import HttpError, Match, Request, Response, Router, random_id

_log = logging.getLogger(__name__)

# The real API caps a batch body at 256 MB; anything larger is refused before it is read.
MAX_BODY_BYTES = 256 * 1024 * 1024
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "proxy-authorization", "cookie"})


class Emulator:
    """A local stand-in for the provider HTTP APIs, for tests, demos and the action's self-test."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self.port = port
        self.base_url = ""
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._rate_window, self._rate_used = -1, 0
        # A lambda, not the object: tests may replace `emulator.config` wholesale while it runs.
        self.anthropic = AnthropicApi(lambda: self.config)
        self._router = Router()
        self._router.add_api(self.anthropic)
        self.gemini = GeminiApi(lambda: self.config)
        self._router.add_api(self.gemini)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        # A wildcard bind is not an address a client can use; loopback reaches it from this host.
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else ("::1" if self.host == "::" else self.host)
        self.base_url = f"http://[{shown}]:{self.port}" if ":" in shown else f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- inspection -----------------------------------------------------------------------------

    def calls(self, route: str | None = None) -> list[Call]:
        with self._calls_lock:
            return [c for c in self._calls if route is None or c.route == route]

    def clear_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    def batch(self, batch_id: str) -> Batch:
        """The live internal record of a batch (KeyError if unknown), brought up to date first."""
        return self.anthropic.batch(batch_id)

    def gemini_job(self, name: str) -> GeminiJob:
        """The live record of a Gemini batch job (`batches/x` or `x`; KeyError if unknown), brought up to date."""
        return self.gemini.job(name)

    # --- request handling -----------------------------------------------------------------------

    def dispatch(self, request: Request) -> tuple[str, Response]:
        """Answer one request; returns the route name it was logged under and the response."""
        if request.path == "/healthz":
            return "health", Response(200, b'{"status":"ok"}')
        found = self._router.match(request.method, request.path)
        if not isinstance(found, Match):
            message = f"{request.method} {request.path} is not a known endpoint"
            if request.header("x-goog-api-key") is not None or ":" in request.path.rsplit("/", 1)[-1]:
                # Google answers a route it does not serve (a batch call under `v1`) with a plain 404.
                return "unknown", self.gemini.error_response(request, HttpError(404, message, "NOT_FOUND"))
            status = 405 if found else 404
            error_type = "not_found_error" if status == 404 else "invalid_request_error"
            return "unknown", self.error_response(request, HttpError(status, message, error_type))
        route = found.route
        try:
            # Credentials first, faults second: a faulted route still refuses a caller who has no key.
            route.api.authorize(request)
            fault = self._take_fault(route.name)
            if fault is None and route.name in _RATE_LIMITED:
                self._rate_limit()
                if self.config.sync_latency_seconds:
                    time.sleep(self.config.sync_latency_seconds)
            if fault is None:
                return route.name, route.handler(request, found.params)
            if fault.kind == "drop":
                return route.name, Response(0, drop=True)
            if fault.kind == "lose-response":
                route.handler(request, found.params)
                return route.name, Response(0, drop=True)
            if fault.kind in ("cut", "truncate"):
                response = route.handler(request, found.params)
                response.cut_after_lines = fault.after_lines
                response.cut_cleanly = fault.kind == "truncate"
                return route.name, response
            if fault.kind == "garble":
                response = route.handler(request, found.params)
                # What a proxy's error page or a torn buffer looks like to a JSON client.
                return route.name, Response(200, response.body[: len(response.body) // 2] or b"<html>", headers=[])
            if fault.kind == "foreign-results":
                request.foreign_results = fault.extra
                return route.name, route.handler(request, found.params)
            headers = [] if fault.retry_after is None else [("retry-after", _seconds(fault.retry_after))]
            raise HttpError(fault.status, "", None, headers)
        except HttpError as error:
            return route.name, route.api.error_response(request, error)
        except Exception:
            _log.exception("emulator: %s %s failed", request.method, request.path)
            return route.name, route.api.error_response(request, HttpError(500, "emulator internal error"))

    def error_response(self, request: Request, error: HttpError) -> Response:
        """An error for a request no route has claimed, in the main API's format."""
        return self._router.fallback_api.error_response(request, error)

    def _rate_limit(self) -> None:
        """A fixed window per second: the simplest limiter that still answers with a truthful retry-after."""
        limit = self.config.sync_rate_limit
        if limit is None:
            return
        with self._fault_lock:
            now = time.monotonic()
            window = int(now)
            if window != self._rate_window:
                self._rate_window, self._rate_used = window, 0
            if self._rate_used >= limit:
                wait = window + 1 - now
                raise HttpError(429, "rate limit exceeded", "rate_limit_error", [("retry-after", f"{wait:.3f}")])
            self._rate_used += 1

    def _take_fault(self, route: str) -> Fault | None:
        with self._fault_lock:
            for fault in self.config.faults:
                if fault.route == route and fault.times != 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def record(self, route: str, request: Request, status: int) -> None:
        headers = {k: v for k, v in request.headers.items() if k not in _SECRET_HEADERS}
        call = Call(route, request.method, request.path, request.query, headers, request.parsed_body(), status)
        with self._calls_lock:
            self._calls.append(call)


_RATE_LIMITED = frozenset({"messages", "gemini_generate"})


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    # Keep-alive connections idle in their threads; stop() must not wait for clients to hang up.
    block_on_close = False

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive connections (or stop() cutting them) is routine, not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        # Without this, a pooled client connection would keep being served after stop().
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive calls stall ~40 ms each.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: the call log is the record; stderr noise would drown test and demo output.
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is too large to accept (the connection is then closed)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        host = self.headers.get("Host") or f"{self.server.server_name}:{self.server.server_port}"
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=b"",
            request_id=f"req_01{random_id(22)}",
            base_url=f"http://{host}",
        )
        body = self._read_body()
        if body is None:
            route = "unknown"
            too_large = HttpError(413, f"request body exceeds {MAX_BODY_BYTES} bytes", "request_too_large")
            response = emulator.error_response(request, too_large)
        else:
            request.raw_body = body
            route, response = emulator.dispatch(request)
        emulator.record(route, request, response.status)
        self._send(response)

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        if response.drop:
            self._hang_up()
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            if response.chunks is None:
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if response.body:
                    self.wfile.write(response.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            lines_left = response.cut_after_lines
            for chunk in response.chunks:
                if lines_left is not None and chunk.count(b"\n") >= lines_left:
                    # Send whole lines up to the cut, then hang up mid-body as a broken download would.
                    chunk = b"".join(chunk.splitlines(keepends=True)[:lines_left])
                    if chunk:
                        self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    if response.cut_cleanly:
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.wfile.flush()
                    self._hang_up()
                    return
                if lines_left is not None:
                    lines_left -= chunk.count(b"\n")
                if chunk:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-answer; nothing to tell it, and the connection is done.
            self.close_connection = True
