"""Tests of the built-in engine."""
