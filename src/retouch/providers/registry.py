"""Model ids → backend instances, declared as data in ``models.yaml`` files."""

from __future__ import annotations

import importlib
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from retouch.errors import InvalidRequestError, ModelNotFoundError
from retouch.providers.base import EditModel

BUILTIN_PROVIDERS = {
    "basic": "retouch.providers.basic:BasicEditModel",
    "openai": "retouch.providers.openai:OpenAIEditModel",
    "openai_compatible": "retouch.providers.openai_compat:OpenAICompatibleEditModel",
    "fal": "retouch.providers.fal:FalEditModel",
    "replicate": "retouch.providers.replicate:ReplicateEditModel",
    "bfl": "retouch.providers.bfl:BflEditModel",
    "gemini": "retouch.providers.gemini:GeminiEditModel",
    "stability": "retouch.providers.stability:StabilityEditModel",
    "router": "retouch.providers.router:RoutedEditModel",  # entries with `deployments:`
    "diffusers": "retouch.providers.diffusers_local:DiffusersEditModel",
    "upscale": "retouch.providers.upscale:UpscaleEditModel",
}
ENTRY_POINT_GROUP = "retouch.providers"
_ENTRY_KEYS = {"id", "aliases", "provider", "description", "owned_by"}
# What stays with the public id when a single-provider entry is routed (the rest, price
# included, describes its one deployment).
_ROUTER_KEYS = {"id", "aliases", "description", "owned_by", "routing", "retries",
                "retry_base_delay_s", "retry_max_delay_s", "fallbacks"}


class ConfigError(Exception):
    """A models file that cannot be used; raised at start-up, never per request."""


class ModelRegistry:
    """Looks models up by id or alias; never by substring."""

    def __init__(self, models: list[EditModel], default_model: str, settings: Any = None) -> None:
        self._models = list(models)
        self.settings = settings  # what backends sharing state across models read (``bind``)
        self.shared: dict[str, Any] = {}  # that state: one local runtime for all local models
        self._by_name: dict[str, EditModel] = {}
        for model in self._models:
            for name in [model.id, *model.aliases]:
                if name in self._by_name:
                    raise ConfigError(f"model name {name!r} is declared twice")
                self._by_name[name] = model
        self.default_model = default_model
        for model in self._models:
            bind = getattr(model, "bind", None)  # routed models resolve fallbacks, local ones a runtime
            if bind is not None:
                bind(self)

    @classmethod
    def from_files(cls, user_file: Path | None, default_model: str, settings: Any = None) -> ModelRegistry:
        """The shipped catalogue, overlaid by the user's file when given."""
        entries = {e["id"]: e for e in _read_entries(_shipped_catalogue(), "models.yaml")}
        if user_file is not None:
            text = Path(user_file).read_text(encoding="utf-8")
            entries.update({e["id"]: e for e in _read_entries(text, str(user_file))})
        return cls([build_model(routed(entry)) for entry in entries.values()], default_model, settings)

    def resolve(self, name: str | None) -> EditModel:
        """The model called ``name`` (the default when None); 404 listing ids otherwise."""
        model = self._by_name.get(name or self.default_model)
        if model is None:
            raise ModelNotFoundError(
                f"The model {name!r} does not exist. Available models: "
                f"{', '.join(m.id for m in self._models)}. GET /v1/models lists them "
                "with their aliases.",
                param="model",
            )
        return model

    def canonical_ids(self, names: list[str] | None, *, param: str = "models") -> list[str] | None:
        """The catalogue ids behind ``names`` (ids or aliases), for a key's allowed models;
        None for none (every model). A 400 naming an unknown one."""
        if not names:
            return None
        unknown = [name for name in names if name not in self._by_name]
        if unknown:
            raise InvalidRequestError(
                f"No model is called {', '.join(map(repr, unknown))}. Known ids: "
                f"{', '.join(m.id for m in self._models)}.", param=param, code="model_not_found")
        return list(dict.fromkeys(self._by_name[name].id for name in names))

    def models(self) -> list[EditModel]:
        return list(self._models)


def _shipped_catalogue() -> str:
    return resources.files("retouch").joinpath("models.yaml").read_text(encoding="utf-8")


def _read_entries(text: str, origin: str) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML ({exc})") from exc
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{origin}: expected a top-level 'models:' list")
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id") or not _backend_of(entry):
            raise ConfigError(f"{origin}: every model needs 'id' and 'provider' (or "
                              f"'deployments'): {entry!r}")
        if entry.get("deployments") and entry.get("provider") not in (None, "router"):
            raise ConfigError(f"{origin}: {entry['id']} has both 'provider' and 'deployments'; "
                              "keep one (put the provider inside each deployment)")
    return entries


def _backend_of(entry: dict[str, Any]) -> str | None:
    return entry.get("provider") or ("router" if entry.get("deployments") else None)


def routed(entry: dict[str, Any]) -> dict[str, Any]:
    """A single-provider entry of a backend that asks for routing (``routed_by_default``,
    as hosted providers do) becomes a router entry with that one deployment, so it gets
    the router's retries before acceptance and fallbacks like any routed id. With nowhere
    else to send jobs, it rests after failures only when the entry sets ``cooldown_s``."""
    if entry.get("deployments") or not getattr(load_provider(_backend_of(entry) or ""),
                                                "routed_by_default", False):
        return entry
    deployment = {"cooldown_s": 0, **{k: v for k, v in entry.items() if k not in _ROUTER_KEYS}}
    return {**{k: v for k, v in entry.items() if k in _ROUTER_KEYS}, "deployments": [deployment]}


def build_model(entry: dict[str, Any]) -> EditModel:
    """Instantiate the backend class named by ``entry['provider']``."""
    backend = load_provider(_backend_of(entry) or "")
    config = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
    return backend(
        entry["id"],
        aliases=entry.get("aliases") or [],
        description=" ".join(str(entry.get("description", "")).split()),
        owned_by=entry.get("owned_by", "retouch"),
        config=config,
    )


def load_provider(name: str) -> type[EditModel]:
    """The backend class for a provider name: built-ins first, then entry points."""
    target = BUILTIN_PROVIDERS.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            known = ", ".join(sorted(BUILTIN_PROVIDERS))
            raise ConfigError(f"unknown provider {name!r}; built-in providers: {known}")
        return found[0].load()
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
