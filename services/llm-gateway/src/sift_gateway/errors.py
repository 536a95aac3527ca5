"""Every error the gateway answers with, in OpenAI's `{"error": {...}}` shape.

Handlers raise `ApiError`; one middleware turns it (and anything unexpected) into a response,
so clients such as the official `openai` package see the status codes and fields they expect.
"""

from typing import Any

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body()),
            content_type=JSON_CONTENT_TYPE,
            headers=self.headers,
        )


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, error_type="invalid_request_error", param=param, code=code)


def model_not_found(model: str, known: list[str]) -> ApiError:
    return ApiError(
        404,
        f"model {model!r} does not exist; known models: {', '.join(sorted(known))}",
        error_type="invalid_request_error",
        param="model",
        code="model_not_found",
    )


def unavailable(message: str, retry_after_s: int, code: str = "upstream_unavailable") -> ApiError:
    return ApiError(
        503,
        message,
        error_type="service_unavailable",
        code=code,
        headers={"Retry-After": str(retry_after_s)},
    )


def upstream_error(status: int, message: str, code: str = "upstream_error") -> ApiError:
    """An upstream failure the gateway could not retry away (502/504), or its 4xx passed on."""
    error_type = "invalid_request_error" if 400 <= status < 500 else "upstream_error"
    return ApiError(status, message, error_type=error_type, code=code)


@web.middleware
async def openai_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Map every failure to OpenAI's error shape; never leak a traceback to the client."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        return ApiError(exc.status, exc.reason, error_type="invalid_request_error").response()
    except Exception:
        request.app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return ApiError(500, "internal gateway error", error_type="server_error").response()
