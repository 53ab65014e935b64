"""Fireworks' base models (accounts/fireworks/models/...): data in catalogue.json, served as is.

What the sandbox reads from a record: `supportsLora` (an addon may be built on it and a
deployment of it may enable addons), `supportsServerless` (it answers inference without a
deployment; with `supportsLora` too, it takes serverless LoRA) and `contextLength`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from reconciler.sandbox.fireworks.names import CATALOGUE_ACCOUNT, parse_model


@dataclass(frozen=True)
class Base:
    record: dict[str, Any]  # the Model as Get Model answers it

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def supports_lora(self) -> bool:
        return bool(self.record.get("supportsLora"))

    @property
    def serverless(self) -> bool:
        return bool(self.record.get("supportsServerless"))

    @property
    def serverless_lora(self) -> bool:
        # SDK 1.2.30 has no field of its own for serverless LoRA: the sandbox takes a base that
        # is both served serverless and LoRA-capable (glm-5p3-flash, the docs' only one).
        return self.serverless and self.supports_lora


class Catalogue:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._bases = {str(r["name"]): Base(r) for r in records}
        for name in self._bases:
            parsed = parse_model(name)
            if parsed is None or parsed[0] != CATALOGUE_ACCOUNT:
                raise ValueError(f"catalogue: {name!r} is not accounts/fireworks/models/<id>")

    @classmethod
    def bundled(cls) -> Catalogue:
        text = resources.files("reconciler.sandbox.fireworks").joinpath("catalogue.json")
        return cls(json.loads(text.read_text(encoding="utf-8"))["models"])

    def get(self, name: str) -> Base | None:
        return self._bases.get(name)

    def all(self) -> list[Base]:
        return [self._bases[n] for n in sorted(self._bases)]
