"""``GET /metrics``: the app's Prometheus metrics (see ``retouch.observability.metrics``).

Like ``/healthz`` it needs no API key, so that Prometheus can scrape it: keep it off the
public path at the load balancer if model names and volumes are not for everyone.
"""

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter()


@router.get("/metrics", tags=["health"], include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
