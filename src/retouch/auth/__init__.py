"""Who may call the API: API keys (static for now), checked in constant time."""

from retouch.auth.keys import Principal, StaticKeyAuthenticator

__all__ = ["Principal", "StaticKeyAuthenticator"]
