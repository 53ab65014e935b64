"""The model catalogue as data: parsing the API's records, the cache and its fallback, and the
plan's rules about base models (pure: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.catalogue import (
    CACHED,
    LIVE,
    SNAPSHOT,
    Catalogue,
    CatalogueModel,
    base_problem,
    deprecation_note,
    parse_models,
)
from reconciler.adapters.preflight import Limits
from reconciler.base.errors import EndpointError
from reconciler.base.model import (
    EMPTY_RECORD,
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    LockedFinetune,
    Observed,
    Recorded,
    RemoteFinetune,
)
from reconciler.plan.planner import Action, build
from reconciler.providers import catalogues, registry
from reconciler.providers.base import Capabilities

ACCOUNT = "0123456789abcdef0123456789abcdef"
SMALL = "@cf/mistralai/mistral-small-3.1-24b-instruct"
QWEN = "@cf/qwen/qwen2.5-coder-32b-instruct"
OLD = "@hf/mistral/mistral-7b-instruct-v0.2"
PLAIN = "@cf/meta/llama-3.1-8b-instruct-fast"
LIMITS = Limits.from_data(registry.limits("cloudflare"))
CAPS = {"cloudflare": Capabilities(False, False, False, False)}


def record(name: str, **props: Any) -> dict[str, Any]:
    """A catalogue record shaped like Cloudflare's."""
    return {
        "id": "f" * 8,
        "source": 1,
        "name": name,
        "description": "a model",
        "task": {"id": "t", "name": "Text Generation", "description": ""},
        "tags": [],
        "properties": [{"property_id": k, "value": v} for k, v in props.items()],
    }


CATALOGUE = Catalogue(
    parse_models(
        [
            record(SMALL, lora="true", context_window="128000"),
            record(QWEN, lora="true"),
            record(OLD, lora="true", planned_deprecation_date="2026-05-30"),
            record(PLAIN, beta="true"),
            record("@cf/google/gemma-3-12b-it", lora="true", planned_deprecation_date="2027-03-01"),
        ]
    ),
    LIVE,
)


# --- parsing ---


def test_parse_reads_lora_and_deprecation_from_the_properties() -> None:
    models = CATALOGUE.models
    assert models[SMALL] == CatalogueModel(SMALL, True, None, "Text Generation")
    assert models[OLD].deprecation == "2026-05-30"
    assert models[PLAIN].lora is False


def test_parse_is_ready_for_odd_records() -> None:
    found = parse_models(
        [
            "not a record",
            {"name": 3},
            {"name": "@cf/x/a", "properties": "nope"},
            {"name": "@cf/x/b", "properties": [{"property_id": "lora", "value": True}]},
            {"name": "@cf/x/c", "properties": [{"property_id": "lora", "value": "false"}, 7]},
            {"name": "@cf/x/d", "properties": [{"property_id": "planned_deprecation_date"}]},
        ]
    )
    assert sorted(found) == ["@cf/x/a", "@cf/x/b", "@cf/x/c", "@cf/x/d"]
    assert [found[n].lora for n in sorted(found)] == [False, True, False, False]
    assert found["@cf/x/d"].deprecation is None


# --- the checks ---


def test_a_lora_model_passes_and_others_are_refused_naming_the_catalogue() -> None:
    assert base_problem(SMALL, CATALOGUE, frozenset(), "") is None
    problem = base_problem(PLAIN, CATALOGUE, frozenset(), "")
    assert problem is not None
    assert problem.startswith(
        f"model {PLAIN} does not take LoRA adapters: the account's model catalogue "
        "(GET .../ai/models/search) does not mark it lora; the LoRA-capable models there are "
    )
    missing = base_problem(
        "@cf/mistralai/mistral-small-3.1-24b-instruc", CATALOGUE, frozenset(), ""
    )
    assert missing is not None and f"(did you mean {SMALL}?)" in missing


def test_the_config_wins_over_the_catalogue() -> None:
    assert base_problem(PLAIN, CATALOGUE, frozenset({PLAIN}), "") is None


def test_deprecation_notes_tell_past_from_future() -> None:
    assert deprecation_note(OLD, CATALOGUE, "2026-12-01", title="Cloudflare") == (
        f"base model {OLD} is deprecated since 2026-05-30 (planned_deprecation_date in the "
        "account's model catalogue (GET .../ai/models/search)): move the adapter to another "
        "LoRA-capable base before Cloudflare stops serving it"
    )
    future = deprecation_note("@cf/google/gemma-3-12b-it", CATALOGUE, "2026-12-01")
    assert future is not None and future.startswith(
        "base model @cf/google/gemma-3-12b-it will be deprecated on 2027-03-01"
    )
    assert deprecation_note(SMALL, CATALOGUE, "2026-12-01") is None


# --- in the plan (pure) ---


def desired(model: str, public: bool = False) -> tuple[Desired, dict[Path, AssetDigest]]:
    path = Path("/nowhere/adapter_config.json")
    d = DesiredFinetune(
        name="bot",
        provider="cloudflare",
        account=ACCOUNT,
        model=model,
        description=None,
        public=public,
        assets=(AssetFile("adapter_config.json", path),),
        fields={"model": model, "description": None, "public": public},
    )
    digests = {path: AssetDigest("adapter_config.json", 3, "sha256:" + "a" * 64)}
    return (
        Desired(Path("f.yaml"), (d,), {"cloudflare": (ACCOUNT,)}, {"cloudflare": LIMITS}),
        digests,
    )


def plan_for(
    model: str,
    catalogue: Catalogue | None = CATALOGUE,
    observed: Observed | None = None,
    recorded: Recorded = EMPTY_RECORD,
    public: bool = False,
) -> Any:
    want, digests = desired(model, public)
    return build(
        want,
        observed or Observed({}),
        recorded,
        digests,
        CAPS,
        {"cloudflare": "sandbox"},
        catalogues={("cloudflare", ACCOUNT): catalogue} if catalogue else None,
        today="2026-12-01",
    )


def test_a_create_on_a_base_without_lora_is_blocked() -> None:
    (change,) = plan_for(PLAIN).changes
    assert change.action is Action.BLOCKED
    assert "does not take LoRA adapters" in change.reason
    assert change.steps == ()


def test_a_create_on_a_lora_base_is_planned() -> None:
    (change,) = plan_for(SMALL).changes
    assert change.action is Action.CREATE
    assert change.warnings == ()


def test_an_undocumented_family_is_a_warning() -> None:
    (change,) = plan_for(QWEN).changes
    assert change.action is Action.CREATE
    assert change.warnings == (
        f"Cloudflare documents no adapter model_type for {QWEN}, so the adapter's model_type "
        "could not be checked against it (any of mistral, gemma, llama is accepted)",
    )


def test_a_deprecated_base_warns_even_when_nothing_changes() -> None:
    remote = RemoteFinetune(
        "cloudflare",
        ACCOUNT,
        "id-1",
        "bot",
        OLD,
        None,
        False,
        fields={"model": OLD, "description": None},
    )
    locked = LockedFinetune(
        "bot",
        "cloudflare",
        ACCOUNT,
        "id-1",
        OLD,
        {"adapter_config.json": AssetDigest("adapter_config.json", 3, "sha256:" + "a" * 64)},
        fields={"model": OLD, "description": None, "public": False},
    )
    plan = plan_for(
        OLD,
        observed=Observed({("cloudflare", ACCOUNT): (remote,)}),
        recorded=Recorded({"bot": locked}, {"cloudflare": "sandbox"}),
    )
    (change,) = plan.changes
    assert change.action is Action.NOOP
    assert len(change.warnings) == 1 and "is deprecated since 2026-05-30" in change.warnings[0]


def test_without_a_catalogue_the_plan_checks_no_base() -> None:
    (change,) = plan_for(PLAIN, catalogue=None).changes
    assert change.action is Action.CREATE


@pytest.mark.parametrize("public", [True, False])
def test_public_absent_from_the_list_is_compared_with_the_lock(public: bool) -> None:
    remote = RemoteFinetune(
        "cloudflare",
        ACCOUNT,
        "id-1",
        "bot",
        SMALL,
        None,
        False,
        fields={"model": SMALL, "description": None},
    )
    digest = AssetDigest("adapter_config.json", 3, "sha256:" + "a" * 64)
    locked = LockedFinetune(
        "bot",
        "cloudflare",
        ACCOUNT,
        "id-1",
        SMALL,
        {"adapter_config.json": digest},
        fields={"model": SMALL, "description": None, "public": public},
    )
    observed = Observed({("cloudflare", ACCOUNT): (remote,)})
    recorded = Recorded({"bot": locked}, {"cloudflare": "sandbox"})
    (same,) = plan_for(SMALL, observed=observed, recorded=recorded, public=public).changes
    assert same.action is Action.NOOP
    (other,) = plan_for(SMALL, observed=observed, recorded=recorded, public=not public).changes
    assert other.action is Action.BLOCKED
    assert [(f.field, f.before, f.after) for f in other.fields] == [("public", public, not public)]


# --- the cache and its fallback ---


class Reader:
    """A provider that serves a catalogue, counting its reads; `fail` makes it refuse."""

    def __init__(self, fail: bool = False, empty: bool = False) -> None:
        self.endpoint = "sandbox"
        self.reads = 0
        self.fail = fail
        self.empty = empty

    def read_catalogue(self, account: str) -> dict[str, CatalogueModel]:
        self.reads += 1
        if self.fail:
            raise EndpointError("403 Authentication error [code: 10000]")
        return {} if self.empty else dict(CATALOGUE.models)


def load(reader: Reader, cache: Path, **kw: Any) -> tuple[dict[Any, Catalogue], tuple[str, ...]]:
    want, _ = desired(SMALL)
    return catalogues.read_cached(want, {"cloudflare": reader}, cache, **kw)  # type: ignore[dict-item]


def test_read_once_then_served_from_the_cache_until_it_expires(tmp_path: Path) -> None:
    cache, reader = tmp_path / "catalogue.json", Reader()
    found, notes = load(reader, cache, now=1000.0)
    assert (found[("cloudflare", ACCOUNT)].source, reader.reads, notes) == (LIVE, 1, ())
    found, _ = load(reader, cache, now=1000.0 + 3600)
    assert (found[("cloudflare", ACCOUNT)].source, reader.reads) == (CACHED, 1)
    assert found[("cloudflare", ACCOUNT)].models == CATALOGUE.models
    found, _ = load(reader, cache, now=1000.0 + 3600, refresh=True)
    assert (found[("cloudflare", ACCOUNT)].source, reader.reads) == (LIVE, 2)
    found, _ = load(reader, cache, now=1000.0 + 3600 + 86_401)
    assert reader.reads == 3


def test_an_unreadable_catalogue_falls_back_to_the_snapshot_with_one_warning(
    tmp_path: Path,
) -> None:
    found, notes = load(Reader(fail=True), tmp_path / "catalogue.json")
    catalogue = found[("cloudflare", ACCOUNT)]
    assert catalogue.source == SNAPSHOT
    assert set(catalogue.models) == set(LIMITS.lora_models)
    assert catalogue.models[OLD].deprecation == "2026-05-30"
    (note,) = notes
    assert note.startswith(
        f"the model catalogue of cloudflare account {ACCOUNT} could not be read (403 "
        "Authentication error [code: 10000]); checking base models against the bundled "
        f"snapshot of {LIMITS.snapshot_date} instead"
    )


def test_an_empty_catalogue_is_no_catalogue(tmp_path: Path) -> None:
    # a server that answers every GET with an empty list must not block every base model
    found, notes = load(Reader(empty=True), tmp_path / "catalogue.json")
    assert found[("cloudflare", ACCOUNT)].source == SNAPSHOT
    assert "could not be read (it came back empty)" in notes[0]
    assert not (tmp_path / "catalogue.json").exists()


def test_an_unreadable_catalogue_falls_back_to_a_stale_copy_first(tmp_path: Path) -> None:
    cache = tmp_path / "catalogue.json"
    load(Reader(), cache, now=1000.0)
    found, notes = load(Reader(fail=True), cache, now=1000.0 + 10 * 86_400)
    assert found[("cloudflare", ACCOUNT)].source == CACHED
    assert PLAIN in found[("cloudflare", ACCOUNT)].models  # the copy, not the snapshot
    assert "checking base models against the copy read at 1970-01-01T00:16:40Z" in notes[0]


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": "x"}', "\0" * 10])
def test_a_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, text: str) -> None:
    cache = tmp_path / "catalogue.json"
    cache.write_text(text)
    reader = Reader()
    found, _ = load(reader, cache)
    assert reader.reads == 1 and found[("cloudflare", ACCOUNT)].source == LIVE
    assert json.loads(cache.read_text())["format"] == "reconciler-catalogue"


@pytest.mark.parametrize(
    ("raw", "ttl"), [("", 86_400.0), ("60", 60.0), ("0", 0.0), ("soon", 86_400.0), ("-5", 86_400.0)]
)
def test_the_ttl_comes_from_the_environment(raw: str, ttl: float) -> None:
    assert catalogues.ttl_from_env({"RECONCILER_CATALOGUE_TTL": raw}) == ttl


def test_a_model_the_search_no_longer_lists_still_gets_its_deprecation() -> None:
    # the real search drops a model some months after its planned_deprecation_date
    gone = Catalogue({SMALL: CATALOGUE.models[SMALL]}, LIVE)
    note = deprecation_note(OLD, gone, "2026-12-01", {OLD: "2026-05-30"})
    assert note is not None and note.startswith(
        f"base model {OLD} is deprecated since 2026-05-30 (the bundled snapshot's "
        "planned_deprecation_date)"
    )
    unknown = deprecation_note("@cf/x/vanished", gone, "2026-12-01", {})
    assert unknown is not None and "is no longer in the account's model catalogue" in unknown
