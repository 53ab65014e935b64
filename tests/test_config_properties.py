"""Property: whatever the config file holds, loading it ends in a Desired or a ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.base.errors import ConfigError
from reconciler.providers.registry import load_config

KEYS = [
    "version",
    "providers",
    "finetunes",
    "settings",
    "cloudflare",
    "cohere",
    "account_id",
    "name",
    "provider",
    "model",
    "description",
    "public",
    "adapter",
    "checks",
    "prompt",
    "expect",
    "contains",
    "matches",
    "base_model",
    "base_type",
    "dataset",
    "path",
    "type",
    "hyperparameters",
    "train_epochs",
    "prevent_destroy",
    "previous_name",
    "limits",
    "lora_models",
    "max_lora_rank",
    "allow_external_assets",
    "prune",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "cloudflare",
            "cohere",
            "@cf/google/gemma-2b-it-lora",
            "adapters/x",
            "${UNSET_VAR}",
            "${HOME:-x}",
            "$${literal}",
            "cf-public-x",
            "[",
            "*a",
        ]
    ),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
documents = st.one_of(
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.fixed_dictionaries(
        {"version": st.sampled_from([1, 2, "1"]), "finetunes": st.lists(values, max_size=3)},
        optional={"providers": values, "settings": values},
    ).map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.text(max_size=200),  # not YAML at all, mostly
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_loader_never_raises_anything_but_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "finetunes.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            desired = load_config(path, {"HOME": "/root"})
        except ConfigError as exc:
            assert exc.problems  # a refusal always says why
            assert all(p.file == str(path) for p in exc.problems)
        else:
            assert desired.config_path == path
