"""reconciler: Terraform-style infrastructure-as-code for fine-tuned models."""

from __future__ import annotations

__version__ = "0.1.0"
