"""Liveness (``/healthz``) and readiness (``/readyz``)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from retouch.observability.readiness import ReadinessChecks

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: every registered check (database, storage, Redis, …) passed.
    503 names the check that failed and why."""
    checks: ReadinessChecks | None = getattr(request.app.state, "readiness", None)
    outcome = await checks.run() if checks is not None else None
    results = outcome.checks if outcome is not None else {}
    ready = outcome is None or outcome.ready
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": results},
                        status_code=200 if ready else 503)
