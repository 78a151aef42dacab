"""The server's error table: what a bad request gets back (JSON {"error", "hint",
"status"} with a 4xx status; README "Serving" lists the cases), never a traceback."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from seqtool.errors import SeqtoolError


class ApiError(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def error_body(status: int, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": message, "hint": hint, "status": status}


class BodyLimit:
    """413 for a body whose Content-Length is over `max_body` bytes, before it is read.
    A plain ASGI middleware: `@app.middleware("http")` (Starlette's
    BaseHTTPMiddleware) runs every request through an extra task and stream, the
    largest part of the event loop's time per request here (py-spy, 16 clients)."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            if size.isdigit() and int(size) > self.max_body:
                response = JSONResponse(error_body(
                    413, f"the request body has {int(size):,} bytes; the limit is "
                         f"{self.max_body:,}", "send less in one request"), 413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI, max_body: int) -> None:
    """Every failure as JSON {error, hint, status}: bodies over `max_body` bytes 413,
    ApiError its own status, a SeqtoolError 422, a validation error 422 (400 for
    bad JSON), 404/405 as such; anything else 500 without a traceback."""
    app.add_middleware(BodyLimit, max_body=max_body)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message, exc.hint), exc.status)

    @app.exception_handler(SeqtoolError)
    async def seqtool_error(request: Request, exc: SeqtoolError) -> JSONResponse:
        return JSONResponse(error_body(422, exc.message, exc.hint), 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body(400, "the body is not valid JSON",
                                           "send a JSON object"), 400)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return JSONResponse(error_body(422, f"{where}: {first.get('msg')}{more}",
                                       "see the request shapes at /openapi.json"), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        hint = "see the endpoints at /openapi.json" if exc.status_code in (404, 405) else None
        return JSONResponse(error_body(exc.status_code, str(exc.detail), hint),
                            exc.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, f"internal error ({type(exc).__name__})",
                                       "this is a bug in seqtool: please report it"), 500)
