"""The bad-input corpus: each case breaks one thing in a copy of the quick start.

A case is (id, how to break the project, the exact message expected on stderr). The message
is the line that names the problem; `{config}` and `{lock}` stand for the paths.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

Break = Callable[[Path], None]  # given the config path


def edit(old: str, new: str, count: int = 1) -> Break:
    def apply(config: Path) -> None:
        text = config.read_text()
        assert old in text, old
        config.write_text(text.replace(old, new, count))

    return apply


def write(text: str) -> Break:
    return lambda config: config.write_text(text)


def write_bytes(data: bytes) -> Break:
    return lambda config: config.write_bytes(data)


def lock(text: str) -> Break:
    return lambda config: config.with_suffix(".lock").write_text(text)


def adapter(name: str, action: Callable[[Path], None]) -> Break:
    return lambda config: action(config.parent / "adapters" / "faq-v1" / name)


def symlink_folder(config: Path) -> None:
    target = config.parent / "adapters" / "faq-v1"
    os.rename(target, config.parent / "real-faq")
    os.symlink(config.parent / "real-faq", target)


def symlink_file(config: Path) -> None:
    target = config.parent / "adapters" / "faq-v1" / "adapter_config.json"
    os.rename(target, config.parent / "elsewhere.json")
    os.symlink(config.parent / "elsewhere.json", target)


def outside(config: Path) -> None:
    os.rename(config.parent / "adapters" / "faq-v1", config.parent.parent / "faq-v1")
    edit("adapters/faq-v1/", "../faq-v1/")(config)


def absolute_outside(config: Path) -> None:
    os.rename(config.parent / "adapters" / "faq-v1", config.parent.parent / "faq-abs")
    edit("adapters/faq-v1/", str(config.parent.parent / "faq-abs"))(config)


def huge(config: Path) -> None:
    with config.open("a") as f:
        f.write("# " + "x" * 10_000_100 + "\n")


def alias_bomb(config: Path) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("finetunes: *a8")
    config.write_text("\n".join(lines) + "\n")


def lock_dir(config: Path) -> None:
    config.with_suffix(".lock").unlink()
    config.with_suffix(".lock").mkdir()


ENTRY = {"provider": "cloudflare", "account": "0" * 32, "id": "x", "model": "m", "assets": {}}
VALID_LOCK = json.dumps({"format_version": 1, "finetunes": {"old": ENTRY}}, indent=2)

CASES: list[tuple[str, Break, str]] = [
    (
        "yaml-unclosed-flow",
        edit("finetunes:", "finetunes: ["),
        "{config}:8:3: error: invalid YAML: expected the node content, but found '-'",
    ),
    (
        "yaml-tab-indent",
        edit("  - name: faq-bot-v1", "\t- name: faq-bot-v1"),
        "{config}:21:1: error: invalid YAML: found character '\\t' that cannot start any token",
    ),
    (
        "yaml-bad-quote",
        edit('model: "@cf/google', 'model: "@cf/google"x'),
        "{config}:23:24: error: invalid YAML: expected <block end>, but found '<scalar>'",
    ),
    (
        "empty-file",
        write(""),
        "{config}:1:1: error: the file is empty: expected a mapping with 'version' and 'finetunes'",
    ),
    (
        "only-comments",
        write("# nothing here\n"),
        "{config}:1:1: error: the file is empty: expected a mapping with 'version' and 'finetunes'",
    ),
    (
        "top-level-list",
        write("- version: 1\n"),
        "{config}:1:1: error: (top level): expected a mapping, got a list",
    ),
    (
        "top-level-scalar",
        write("hello\n"),
        "{config}:1:1: error: (top level): expected a mapping, got a string",
    ),
    (
        "not-utf8",
        write_bytes(b"version: 1\nfinetunes: []\n# \xff\xfe\n"),
        "{config}: error: is not UTF-8 text (invalid start byte)",
    ),
    (
        "too-large",
        huge,
        "{config}: error: is larger than 10 MB; a config that large is not one reconciler wrote or reads: is it the right file?",
    ),
    (
        "alias-bomb",
        alias_bomb,
        "{config}:1:1: error: the document expands to more than 200000 values (YAML aliases?); refused",
    ),
    (
        "version-2",
        edit("version: 1", "version: 2"),
        "{config}:2:10: error: version: expected 1, got 2",
    ),
    (
        "version-missing",
        edit("version: 1\n", ""),
        "{config}:2:1: error: (top level): missing required key 'version'",
    ),
    (
        "finetunes-missing",
        write("version: 1\n"),
        "{config}:1:1: error: (top level): missing required key 'finetunes'",
    ),
    (
        "finetunes-not-a-list",
        write("version: 1\nfinetunes: {a: 1}\n"),
        "{config}:2:12: error: finetunes: expected a list, got a mapping",
    ),
    (
        "unknown-top-key",
        edit("version: 1", "version: 1\ntoken: abc"),
        "{config}:3:1: error: token: unknown key 'token'; expected one of: finetunes, providers, settings, version",
    ),
    (
        "unknown-finetune-key",
        edit("public: false", "publik: false"),
        "{config}:12:5: error: finetunes[0].publik: unknown key 'publik'; expected one of: account_id, adapter, checks, description, model, name, provider, public",
    ),
    (
        "unknown-provider-key",
        edit("cloudflare:\n", "cloudflare:\n    api_token: abc\n"),
        "{config}:5:5: error: providers.cloudflare.api_token: unknown key 'api_token'; expected one of: account_id, limits",
    ),
    (
        "wrong-type-public",
        edit("public: false", "public: 'no'"),
        "{config}:12:13: error: finetunes[0].public: expected a boolean (true or false), got a string",
    ),
    (
        "wrong-type-description",
        edit("description: Answers from the product FAQ", "description: [a, b]"),
        "{config}:24:18: error: finetunes[1].description: expected a string, got a list",
    ),
    (
        "wrong-type-name",
        edit("name: faq-bot-v1", "name: 42"),
        "{config}:21:11: error: finetunes[1].name: expected a string, got a number",
    ),
    (
        "empty-name",
        edit("name: faq-bot-v1", 'name: ""'),
        "{config}:21:11: error: finetunes[1].name: '' does not match ^[A-Za-z0-9][A-Za-z0-9._-]*$ (The finetune's name, unique in its account: letters, digits, '.', '_' and '-', starting with a letter or digit.)",
    ),
    (
        "name-with-space",
        edit("name: faq-bot-v1", "name: faq bot"),
        "{config}:21:11: error: finetunes[1].name: 'faq bot' does not match ^[A-Za-z0-9][A-Za-z0-9._-]*$ (The finetune's name, unique in its account: letters, digits, '.', '_' and '-', starting with a letter or digit.)",
    ),
    (
        "name-reserved-prefix",
        edit("name: faq-bot-v1", "name: cf-public-faq"),
        "{config}:21:11: error: finetunes[1].name: 'cf-public-faq' is not allowed: the prefix cf-public- is reserved by Cloudflare for its public adapters",
    ),
    (
        "name-too-long",
        edit("name: faq-bot-v1", "name: " + "n" * 129),
        "{config}:21:11: error: finetunes[1].name: 129 characters, at most 128 allowed",
    ),
    (
        "provider-unknown",
        edit(
            'provider: cloudflare\n    model: "@cf/google',
            'provider: cloudfare\n    model: "@cf/google',
        ),
        "{config}:22:15: error: finetunes[1].provider: 'cloudfare' is not one of: 'cloudflare', 'cohere'",
    ),
    (
        "provider-missing",
        edit('    provider: cloudflare\n    model: "@cf/google', '    model: "@cf/google'),
        "{config}:21:5: error: finetunes[1]: missing required key 'provider'",
    ),
    (
        "model-missing",
        edit('    model: "@cf/google/gemma-2b-it-lora"\n', ""),
        "{config}:21:5: error: finetunes[1]: missing required key 'model'",
    ),
    (
        "model-bad-shape",
        edit('"@cf/google/gemma-2b-it-lora"', "gemma"),
        "{config}:23:12: error: finetunes[1].model: 'gemma' does not match ^@[A-Za-z0-9._-]+/[A-Za-z0-9._/-]+$ (The LoRA-capable base model, e.g. @cf/mistral/mistral-7b-instruct-v0.2-lora.)",
    ),
    (
        "description-too-long",
        edit("Answers from the product FAQ", "d" * 1025),
        "{config}:24:18: error: finetunes[1].description: 1025 characters, at most 1024 allowed",
    ),
    (
        "adapter-missing-key",
        edit("    adapter: adapters/faq-v1/\n", ""),
        "{config}:21:5: error: finetunes[1]: missing required key 'adapter'",
    ),
    (
        "duplicate-name",
        edit("name: faq-bot-v1", "name: support-bot-v3"),
        "{config}:21:11: error: duplicate finetune name 'support-bot-v3' (first declared at line 8)",
    ),
    (
        "duplicate-yaml-key",
        edit("public: false", "public: false\n    public: true"),
        "{config}:13:5: error: duplicate key 'public' (first at line 12); YAML would silently keep only the last",
    ),
    (
        "unset-env",
        edit("${CLOUDFLARE_ACCOUNT_ID}", "${RECONCILER_NOT_SET_ANYWHERE}"),
        "{config}:6:17: error: providers.cloudflare.account_id: environment variable RECONCILER_NOT_SET_ANYWHERE is not set (referenced as ${RECONCILER_NOT_SET_ANYWHERE}); set it or write ${RECONCILER_NOT_SET_ANYWHERE:-default}",
    ),
    (
        "account-not-hex",
        edit("${CLOUDFLARE_ACCOUNT_ID}", "not-an-account"),
        "{config}:6:17: error: providers.cloudflare.account_id: 'not-an-account' does not match ^[0-9a-fA-F]{32}$ (A Cloudflare account id: 32 hexadecimal characters. ${ENV} references are resolved first.)",
    ),
    (
        "adapter-folder-missing",
        edit("adapters/faq-v1/", "adapters/nowhere/"),
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder adapters/nowhere/ does not exist",
    ),
    (
        "adapter-is-a-file",
        edit("adapters/faq-v1/", "adapters/faq-v1/adapter_config.json"),
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder adapters/faq-v1/adapter_config.json is not a folder",
    ),
    (
        "adapter-file-missing",
        adapter("adapter_model.safetensors", Path.unlink),
        "{config}:25:14: error: finetune 'faq-bot-v1': adapters/faq-v1/adapter_model.safetensors: not found in the adapter folder; the provider requires this exact name",
    ),
    (
        "adapter-file-is-a-folder",
        adapter("adapter_config.json", lambda p: (p.unlink(), p.mkdir())),
        "{config}:25:14: error: finetune 'faq-bot-v1': adapters/faq-v1/adapter_config.json: is not a regular file; expected the adapter's adapter_config.json",
    ),
    (
        "adapter-folder-symlink",
        symlink_folder,
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder adapters/faq-v1/ is or passes through a symlink; set settings.allow_external_assets: true to allow it",
    ),
    (
        "adapter-file-symlink",
        symlink_file,
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder adapters/faq-v1/: adapter_config.json is a symlink; set settings.allow_external_assets: true to allow it",
    ),
    (
        "adapter-dotdot-outside",
        outside,
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder ../faq-v1/ is outside the project folder {project}; set settings.allow_external_assets: true to allow it",
    ),
    (
        "adapter-absolute-outside",
        absolute_outside,
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder {parent}/faq-abs is outside the project folder {project}; set settings.allow_external_assets: true to allow it",
    ),
    (
        "lock-corrupt",
        lock("{ this is not json"),
        "Error: {lock}:1:3: not valid JSON (Expecting property name enclosed in double quotes); the lockfile is corrupt or truncated: restore it from version control",
    ),
    (
        "lock-truncated",
        lock(VALID_LOCK[: len(VALID_LOCK) // 2]),
        "Error: {lock}:6:17: not valid JSON (Expecting value); the lockfile is corrupt or truncated: restore it from version control",
    ),
    (
        "lock-future-version",
        lock('{"format_version": 2, "finetunes": {}}'),
        "Error: {lock}: format_version 2 was written by a newer reconciler (this one reads 1); upgrade reconciler",
    ),
    (
        "lock-wrong-shape",
        lock('{"format_version": 1, "finetunes": {"x": {"provider": "cloudflare"}}}'),
        "Error: {lock}: not a reconciler lockfile of format_version 1 (finetunes.x: 'account' is a required property); restore it from version control",
    ),
    (
        "lock-not-an-object",
        lock("[1, 2, 3]"),
        "Error: {lock}: not a reconciler lockfile of format_version 1 ((top level): [1, 2, 3] is not of type 'object'); restore it from version control",
    ),
    (
        "lock-empty-file",
        lock(""),
        "Error: {lock}:1:1: not valid JSON (Expecting value); the lockfile is corrupt or truncated: restore it from version control",
    ),
    ("lock-is-a-folder", lock_dir, "Error: {lock}: cannot be read (Is a directory)"),
]
