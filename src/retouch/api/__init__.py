"""HTTP routers: thin, parsing only; the work happens in ``service.py``."""
