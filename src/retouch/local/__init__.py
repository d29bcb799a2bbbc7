"""Open-weight models on the user's own hardware (diffusers, Ray Serve); torch is imported lazily."""
