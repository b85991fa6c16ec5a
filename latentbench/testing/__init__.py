"""Helpers for tests and offline demos: stand-in models (:mod:`latentbench.testing.standins`).

Nothing in the package imports this; it imports the package."""
