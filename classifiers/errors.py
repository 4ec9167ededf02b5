"""Error types raised by the classifiers library."""

from __future__ import annotations


class ClassifierError(ValueError):
    """Bad input or configuration for a classifier."""


class ModelNotFittedError(ClassifierError):
    """predict() or save() called before fit()."""


class UntrustedModelError(ClassifierError):
    """A model file holds types outside the allow-list, or its sidecar does not match."""
