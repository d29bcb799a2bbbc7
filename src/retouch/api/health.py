"""Liveness."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}
