"""Models, and the one explicit registry (models/registry.py): `[model] arch`
within a task -> (config class, builder)."""

from __future__ import annotations

from seqtool.models.registry import SPECS, ModelSpec, build_model, spec_for

__all__ = ["SPECS", "ModelSpec", "build_model", "spec_for"]
