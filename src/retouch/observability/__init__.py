"""What an operator watches: Prometheus metrics (``metrics``), request ids and JSON logs
without secrets (``logs``), and readiness checks for ``/readyz`` (``readiness``)."""

from retouch.observability.logs import (
    RequestIdMiddleware,
    current_request_id,
    logging_config,
    redact,
)
from retouch.observability.metrics import (
    HttpMetricsMiddleware,
    Metrics,
    shared_across_workers,
)
from retouch.observability.readiness import ReadinessChecks

__all__ = [
    "HttpMetricsMiddleware",
    "Metrics",
    "ReadinessChecks",
    "RequestIdMiddleware",
    "current_request_id",
    "logging_config",
    "redact",
    "shared_across_workers",
]
