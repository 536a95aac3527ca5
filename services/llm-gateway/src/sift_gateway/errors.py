"""Every error the gateway answers with, in OpenAI's `{"error": {...}}` shape.

Handlers raise `ApiError`; one middleware turns it (and anything unexpected) into a response,
so clients such as the official `openai` package see the status codes and fields they expect.

No internals in a body: an error's `message` is written for the client; what only an operator
should read (a replica's URL, what the upstream answered, an exception's text, a traceback)
goes in `detail`, which is logged, never answered. A 5xx answer (and any error with a detail)
ends its message with `(request id <id>)`, the id the log line carries as `request_id` and the
response as `x-request-id`, so an operator can find the detail from what a client reports.
"""

import logging
import uuid
from typing import Any

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json"
REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_KEY = web.RequestKey("sift_gateway_request_id", str)
MAX_BODY_KEY = web.AppKey("sift_gateway_max_request_bytes", int)
logger = logging.getLogger("sift_gateway.errors")


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
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
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


def upstream_error(
    status: int, message: str, code: str = "upstream_error", detail: str | None = None
) -> ApiError:
    """An upstream failure the gateway could not retry away (502/504), or its 4xx passed on."""
    error_type = "invalid_request_error" if 400 <= status < 500 else "upstream_error"
    return ApiError(status, message, error_type=error_type, code=code, detail=detail)


def request_id(request: web.Request) -> str:
    """The request's correlation id: the caller's `x-request-id`, or one made up for it."""
    if (known := request.get(REQUEST_ID_KEY)) is None:
        known = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        request[REQUEST_ID_KEY] = known
    return known


def _answer(request: web.Request, error: ApiError) -> web.Response:
    """The error's response; its detail logged under the request id the body then names."""
    if error.detail is None and error.status < 500:
        return error.response()
    rid = request_id(request)
    if error.detail is not None:
        logger.warning(
            "%s %s answered %d %s: %s",
            request.method,
            request.path,
            error.status,
            error.code or error.error_type,
            error.detail,
            extra={"request_id": rid},
        )
    return ApiError(  # a copy: an error raised again must not collect ids
        error.status,
        f"{error.message} (request id {rid})",
        error_type=error.error_type,
        code=error.code,
        param=error.param,
        headers={**error.headers, REQUEST_ID_HEADER: rid},
    ).response()


@web.middleware
async def openai_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Map every failure to OpenAI's error shape; never leak a traceback to the client."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return _answer(request, exc)
    except web.HTTPRequestEntityTooLarge:
        message = f"the request body is larger than {request.app[MAX_BODY_KEY]} bytes"
        return ApiError(
            413, message, error_type="invalid_request_error", code="request_too_large"
        ).response()
    except web.HTTPException as exc:
        return ApiError(exc.status, exc.reason, error_type="invalid_request_error").response()
    except Exception:
        rid = request_id(request)
        logger.exception(
            "unhandled error on %s %s", request.method, request.path, extra={"request_id": rid}
        )
        error = ApiError(500, "internal gateway error", error_type="server_error")
        return _answer(request, error)
