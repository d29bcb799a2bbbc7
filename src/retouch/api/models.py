"""The models directory: ``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from retouch.api.deps import authenticate, get_service
from retouch.protocol import ModelCard, ModelList
from retouch.providers.base import EditModel
from retouch.service import EditService

router = APIRouter(dependencies=[Depends(authenticate)], tags=["models"])

# Model ids are configuration, so they share one fixed "created" time (2026-01-01).
_CREATED = 1767225600


def model_card(model: EditModel) -> ModelCard:
    availability = model.availability()
    return ModelCard(
        id=model.id, created=_CREATED, owned_by=model.owned_by, aliases=model.aliases,
        provider=model.provider, description=model.description,
        capabilities=model.capabilities(), available=availability.available,
        unavailable_reason=availability.reason, fix=availability.fix, license=model.license,
        price_per_image=model.price_per_image,
    )


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: EditService = Depends(get_service)) -> ModelList:
    return ModelList(data=[model_card(m) for m in service.registry.models()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def retrieve_model(model_id: str, service: EditService = Depends(get_service)) -> ModelCard:
    return model_card(service.registry.resolve(model_id))
