"""The sandbox's Fireworks records, as the store keeps them (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.fireworks.names import deployed_model_name, deployment_name, model_name

OK_STATUS = {"code": "OK", "message": ""}


@dataclass(frozen=True)
class ModelRecord:
    account: str
    model_id: str
    uid: str  # names its files in storage: a model deleted and made again gets a new one
    fields: dict[str, Any]  # the caller-set Model fields, proto-JSON names
    status: dict[str, str]  # {code, message}: how the last operation on it ended
    created_at: float
    updated_at: float
    validated_at: float | None  # None while UPLOADING

    @property
    def name(self) -> str:
        return model_name(self.account, self.model_id)

    @property
    def ready(self) -> bool:
        return self.validated_at is not None

    @property
    def base(self) -> str:
        return str(self.fields.get("peftDetails", {}).get("baseModel", ""))


@dataclass(frozen=True)
class FileRecord:
    filename: str
    size: int  # as declared to getUploadEndpoint
    landed: bool  # a PUT of exactly `size` bytes has completed
    sha256: str | None
    md5: str | None


@dataclass(frozen=True)
class DeploymentRecord:
    account: str
    deployment_id: str
    fields: dict[str, Any]  # the caller-set Deployment fields
    created_at: float
    updated_at: float
    ready_at: float  # real epoch seconds at which CREATING turns READY

    @property
    def name(self) -> str:
        return deployment_name(self.account, self.deployment_id)

    @property
    def base(self) -> str:
        return str(self.fields.get("baseModel", ""))

    @property
    def addons(self) -> bool:
        return bool(self.fields.get("enableAddons"))


@dataclass(frozen=True)
class DeployedRecord:
    account: str
    deployed_id: str
    model_id: str  # an addon of the same account
    deployment_id: str | None  # None when serverless
    base: str  # the addon's base model, kept for the serverless quota
    fields: dict[str, Any]  # displayName, description, public, default
    created_at: float
    updated_at: float
    ready_at: float  # DEPLOYING before, DEPLOYED from then on

    @property
    def name(self) -> str:
        return deployed_model_name(self.account, self.deployed_id)

    @property
    def model_name(self) -> str:
        return model_name(self.account, self.model_id)

    @property
    def deployment_name(self) -> str | None:
        if self.deployment_id is None:
            return None
        return deployment_name(self.account, self.deployment_id)

    @property
    def serverless(self) -> bool:
        return self.deployment_id is None

    @property
    def default(self) -> bool:
        return bool(self.fields.get("default"))
