"""Backends behind the public model ids: the contract, the registry, the built-in engine."""
