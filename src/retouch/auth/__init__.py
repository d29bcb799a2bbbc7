"""Who may call the API: static and managed API keys, checked by digest."""

from retouch.auth.keys import KeyAuthenticator, Principal, StaticKeyAuthenticator

__all__ = ["KeyAuthenticator", "Principal", "StaticKeyAuthenticator"]
