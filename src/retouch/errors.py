"""Every error retouch raises on purpose, rendered once as the OpenAI envelope.

    RetouchError                     500  api_error (base; never raised for client mistakes)
    ├── InvalidRequestError          400  invalid_request_error
    │   ├── InvalidImageError        400  invalid_request_error, code invalid_image
    │   └── ContentPolicyError       400  invalid_request_error, code content_policy_violation
    ├── AuthenticationError          401  invalid_request_error, code invalid_api_key
    ├── InsufficientBalanceError     402  insufficient_quota, code insufficient_balance
    ├── PermissionDeniedError        403  invalid_request_error, code permission_denied
    ├── ModelNotFoundError           404  invalid_request_error, code model_not_found
    ├── ConflictError                409  invalid_request_error, code conflict
    ├── PayloadTooLargeError         413  invalid_request_error
    ├── UnsupportedInstructionError  422  invalid_request_error, code unsupported_instruction
    ├── RateLimitError               429  rate_limit_error (with retry-after when known)
    ├── UpstreamError                502  upstream_error
    ├── ModelUnavailableError        503  service_unavailable, x-should-retry: false
    ├── ServiceUnavailableError      503  service_unavailable (a dependency is away; retryable)
    └── UpstreamTimeoutError         504  upstream_error, code timeout

Each error carries a public ``message`` (safe to show a user: it names the parameter,
the value and the fix) and the ``param`` it concerns. The envelope is
``{"error": {"message", "type", "param", "code"}}``; ``api/errors.py`` renders it.
"""

from __future__ import annotations


class RetouchError(Exception):
    """Base class: subclasses fix ``status``, ``type`` and a default ``code``."""

    status: int = 500
    type: str = "api_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def to_envelope(self) -> dict:
        """The OpenAI error body for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(RetouchError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InvalidImageError(InvalidRequestError):
    code = "invalid_image"


class ContentPolicyError(InvalidRequestError):
    """A provider refused the request or its result on content grounds."""

    code = "content_policy_violation"


class AuthenticationError(RetouchError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class InsufficientBalanceError(RetouchError):
    """A spending cap is reached (Siraya answers 402 "insufficient balance"); retrying
    cannot help until the cap is raised or the period ends."""

    status = 402
    type = "insufficient_quota"
    code = "insufficient_balance"

    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")


class PermissionDeniedError(RetouchError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ModelNotFoundError(RetouchError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ConflictError(RetouchError):
    """The request collides with another one (an idempotency key reused, say)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLargeError(RetouchError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class UnsupportedInstructionError(RetouchError):
    status = 422
    type = "invalid_request_error"
    code = "unsupported_instruction"


class RateLimitError(RetouchError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(RetouchError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ModelUnavailableError(RetouchError):
    status = 503
    type = "service_unavailable"
    code = "model_unavailable"

    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")


class ServiceUnavailableError(RetouchError):
    """Something retouch needs (Redis, the database, storage) does not answer right now."""

    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class UpstreamTimeoutError(RetouchError):
    status = 504
    type = "upstream_error"
    code = "timeout"
