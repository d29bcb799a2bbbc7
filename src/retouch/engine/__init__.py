"""The built-in CPU image engine."""
