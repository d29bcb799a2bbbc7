"""retouch: a self-hosted, OpenAI-compatible image-editing API."""

__version__ = "0.1.0"
