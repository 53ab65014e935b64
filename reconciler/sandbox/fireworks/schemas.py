"""The request messages the sandbox reads, field by field (fireworks-ai 1.2.30 `types/`)."""

from __future__ import annotations

from reconciler.sandbox.fireworks.fields import (
    ANY,
    BOOL,
    INT32,
    OUTPUT,
    STRING,
    STRING_MAP,
    STRINGS,
    Spec,
    enum,
)

MODEL_KINDS = (
    "KIND_UNSPECIFIED",
    "HF_BASE_MODEL",
    "HF_PEFT_ADDON",
    "HF_TEFT_ADDON",
    "FLUMINA_BASE_MODEL",
    "FLUMINA_ADDON",
    "DRAFT_ADDON",
    "FIRE_AGENT",
    "LIVE_MERGE",
    "CUSTOM_MODEL",
    "EMBEDDING_MODEL",
    "SNAPSHOT_MODEL",
)

PEFT_DETAILS: Spec = {
    "baseModel": STRING,
    "r": INT32,
    "targetModules": STRINGS,
    "baseModelType": OUTPUT,
    "mergeAddonModelName": STRING,
}

CONVERSATION_CONFIG: Spec = {"style": STRING, "system": STRING, "template": STRING}

# gatewayModel. Fields the sandbox acts on are typed; the rest are stored and echoed (ANY).
MODEL: Spec = {
    "displayName": STRING,
    "description": STRING,
    "kind": enum(*MODEL_KINDS),
    "peftDetails": PEFT_DETAILS,
    "conversationConfig": CONVERSATION_CONFIG,
    "public": BOOL,
    "contextLength": INT32,
    "githubUrl": STRING,
    "huggingFaceUrl": STRING,
    "supportsImageInput": BOOL,
    "supportsTools": BOOL,
    "supportsLora": BOOL,
    "useHfApplyChatTemplate": BOOL,
    "trainingContextLength": INT32,
    "defaultDraftModel": STRING,
    "defaultDraftTokenCount": INT32,
    "snapshotType": enum("FULL_SNAPSHOT", "INCREMENTAL_SNAPSHOT"),
    "baseModelDetails": ANY,
    "teftDetails": ANY,
    "deprecationDate": ANY,
    **{
        name: OUTPUT
        for name in (
            "name",
            "createTime",
            "updateTime",
            "state",
            "status",
            "deployedModelRefs",
            "importedFrom",
            "fineTuningJob",
            "tunable",
            "rlTunable",
            "calibrated",
            "cluster",
            "supportsServerless",
            "supportedPrecisions",
            "supportedPrecisionsWithCalibration",
            "defaultSamplingParams",
        )
    },
}

CREATE_MODEL: Spec = {"modelId": STRING, "model": MODEL, "cluster": STRING}

UPLOAD_ENDPOINT: Spec = {
    "filenameToSize": STRING_MAP,
    "enableResumableUpload": BOOL,
    "readMask": STRING,
}

# gatewayDeployedModel (the SDK's `lora` resource: load and update bodies)
DEPLOYED_MODEL: Spec = {
    "displayName": STRING,
    "description": STRING,
    "model": STRING,
    "deployment": STRING,
    "default": BOOL,
    "serverless": BOOL,
    "public": BOOL,
    **{n: OUTPUT for n in ("name", "createTime", "updateTime", "state", "status")},
}

_DEPLOYMENT_ECHOED = (
    "acceleratorCount",
    "acceleratorType",
    "activeModelVersion",
    "autoscalingPolicy",
    "autoTune",
    "deploymentShape",
    "deploymentTemplate",
    "directRouteApiKeys",
    "directRouteType",
    "disableDeploymentSizeValidation",
    "draftModel",
    "draftTokenCount",
    "enableHotLoad",
    "enableHotReloadLatestAddon",
    "enableMtp",
    "enableSessionAffinity",
    "expireTime",
    "hotLoadBucketType",
    "hotLoadBucketUrl",
    "maxContextLength",
    "maxReplicaCount",
    "maxWithRevocableReplicaCount",
    "minReplicaCount",
    "ngramSpeculationLength",
    "placement",
    "precision",
    "pricingPlanId",
    "targetModelVersion",
)
_DEPLOYMENT_OUTPUT = (
    "name",
    "createTime",
    "updateTime",
    "deleteTime",
    "purgeTime",
    "state",
    "status",
    "replicaCount",
    "replicaStats",
    "desiredReplicaCount",
    "region",
    "numPeftDeviceCached",
    "directRouteHandle",
    "cluster",
)

# gatewayDeployment: the sandbox acts on baseModel and enableAddons; the hardware, scaling and
# routing fields are stored and echoed, never acted on.
DEPLOYMENT: Spec = {
    "baseModel": STRING,
    "displayName": STRING,
    "description": STRING,
    "enableAddons": BOOL,
    **{n: ANY for n in _DEPLOYMENT_ECHOED},
    **{n: OUTPUT for n in _DEPLOYMENT_OUTPUT},
}
