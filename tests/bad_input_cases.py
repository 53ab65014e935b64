"""The bad-input corpus: each case breaks one thing in a copy of the quick start.

A case is (id, how to break the project, the exact message expected on stderr). The message
is the line that names the problem; `{config}` and `{lock}` stand for the paths. A break may
return a Setup: variables to set in the environment (None: unset), or another config path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conftest import CANARY_TOKEN


@dataclass(frozen=True)
class Setup:
    env: dict[str, str | None] = field(default_factory=dict)
    config: Path | None = None  # run with -c this instead of the project's config


Break = Callable[[Path], "Setup | None"]  # given the config path


def env(**values: str | None) -> Break:
    return lambda config: Setup(env=values)


def use_config(make: Callable[[Path], Path]) -> Break:
    return lambda config: Setup(config=make(config))


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
        "{config}:3:1: error: token: unknown key 'token'; expected one of: finetunes, outputs, providers, settings, version",
    ),
    (
        "unknown-finetune-key",
        edit("public: false", "publik: false"),
        "{config}:12:5: error: finetunes[0].publik: unknown key 'publik' (did you mean 'public'?); expected one of: account_id, adapter, checks, description, keep, model, name, provider, public, versioning",
    ),
    (
        "unknown-provider-key",
        edit("cloudflare:\n", "cloudflare:\n    api_token: abc\n"),
        "{config}:5:5: error: providers.cloudflare.api_token: unknown key 'api_token'; expected one of: account_id, ignore, limits",
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
        "{config}:22:15: error: finetunes[1].provider: 'cloudfare' is not one of: 'cloudflare', 'cohere', 'vllm', 'fireworks'",
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


# --- odd files, deep documents, line breaks in names --------------------------------------


def fifo(config: Path) -> Setup:
    pipe = config.parent / "pipe.yaml"
    os.mkfifo(pipe)
    return Setup(config=pipe)


def nested(document: str) -> Break:
    return write("version: 1\n" + document + "\n")


DEEP = "values nested more than 64 levels deep (or a YAML alias inside itself); refused"
ACCOUNT = "0123456789abcdef0123456789abcdef"
LITERAL = (
    "write ${NAME} or ${NAME:-default} (NAME: letters, digits and '_'), or $${ for a literal ${"
)


def secret_ref(name: str) -> str:
    return (
        f"${{{name}}} would copy a secret into the config: reconciler treats {name} as a "
        "credential, which it reads from the environment itself and which would otherwise be "
        "shown in plans and saved in plan files; remove the reference"
    )


def token_error(what: str) -> str:
    return (
        f"Error: CLOUDFLARE_API_TOKEN {what}; a token is printable ASCII without spaces. It "
        "was not sent: export it again without that (e.g. "
        "CLOUDFLARE_API_TOKEN=\"$(tr -d '[:space:]' < token-file)\")"
    )


URL_SHAPE = "a base URL is http(s)://host[:port][/path]"
DESCRIPTION = "description: Answers from the product FAQ"

CASES += [
    (
        "config-dev-zero",
        use_config(lambda config: Path("/dev/zero")),
        "{config}: error: is a character device, expected a regular YAML file",
    ),
    (
        "config-fifo",
        fifo,
        "{config}: error: is a named pipe (FIFO), expected a regular YAML file",
    ),
    (
        "yaml-nested-flow",
        nested("finetunes: " + "[" * 5000 + "]" * 5000),
        "{config}:2:1011: error: " + DEEP,
    ),
    (
        "yaml-nested-block",
        nested("finetunes:\n" + "".join(" " * i + "-\n" for i in range(1, 3000)) + "   x"),
        "{config}:1001:1000: error: " + DEEP,
    ),
    ("yaml-alias-in-itself", nested("finetunes: &a [*a]"), "{config}:2:12: error: " + DEEP),
    (
        "name-trailing-newline",
        edit("name: faq-bot-v1", 'name: "faq-bot-v1\\n"'),
        "{config}:21:11: error: finetunes[1].name: 'faq-bot-v1\\n' is not allowed: a name is "
        "one line, without a line break",
    ),
    (
        "model-trailing-newline",
        edit('"@cf/google/gemma-2b-it-lora"', '"@cf/google/gemma-2b-it-lora\\n"'),
        "{config}:23:12: error: finetunes[1].model: '@cf/google/gemma-2b-it-lora\\n' is not "
        "allowed: a model name is one line, without a line break",
    ),
    (
        "account-trailing-newline",
        env(CLOUDFLARE_ACCOUNT_ID=ACCOUNT + "\n"),
        f"{{config}}:6:17: error: providers.cloudflare.account_id: '{ACCOUNT}\\n' is not "
        "allowed: an account id is one line, without a line break",
    ),
    # --- secrets in the config ---
    (
        "interpolates-the-token",
        edit(DESCRIPTION, "description: ${CLOUDFLARE_API_TOKEN}"),
        "{config}:24:18: error: finetunes[1].description: " + secret_ref("CLOUDFLARE_API_TOKEN"),
    ),
    (
        "interpolates-the-cohere-key",
        edit(DESCRIPTION, "description: key ${CO_API_KEY}"),
        "{config}:24:18: error: finetunes[1].description: " + secret_ref("CO_API_KEY"),
    ),
    (
        "interpolates-a-secret-in-a-default",
        edit(DESCRIPTION, "description: ${RECONCILER_NOT_SET:-${CLOUDFLARE_API_TOKEN}}"),
        "{config}:24:18: error: finetunes[1].description: " + secret_ref("CLOUDFLARE_API_TOKEN"),
    ),
    (
        "interpolates-another-secret",
        edit(DESCRIPTION, "description: ${GITHUB_TOKEN}"),
        "{config}:24:18: error: finetunes[1].description: " + secret_ref("GITHUB_TOKEN"),
    ),
    (
        "holds-the-token-itself",
        edit(DESCRIPTION, f"description: pasted {CANARY_TOKEN}"),
        "{config}:24:18: error: finetunes[1].description: holds the value of "
        "CLOUDFLARE_API_TOKEN, a secret; a config is shown in plans and saved in plan files: "
        "remove it",
    ),
    # --- ${...} that does not parse ---
    (
        "reference-not-a-name",
        edit(DESCRIPTION, "description: costs ${5}"),
        "{config}:24:18: error: finetunes[1].description: '${' at character 7 does not start "
        "a reference; " + LITERAL,
    ),
    (
        "reference-unclosed",
        edit(DESCRIPTION, "description: ${RECONCILER_A:-${RECONCILER_B}"),
        "{config}:24:18: error: finetunes[1].description: ${RECONCILER_A at character 1 is "
        "not closed: expected '}' or ':-default}' after the name; " + LITERAL,
    ),
    (
        "reference-nested-too-deep",
        edit(DESCRIPTION, "description: " + "${RC:-" * 9 + "x" + "}" * 9),
        "{config}:24:18: error: finetunes[1].description: references nested more than 8 deep "
        "in defaults (at character 49); " + LITERAL,
    ),
    # --- credentials and endpoints from the environment: named, never shown ---
    (
        "token-trailing-newline",
        env(CLOUDFLARE_API_TOKEN=CANARY_TOKEN + "\n"),
        token_error("ends with a line break (as `echo` or a file's last line adds)"),
    ),
    (
        "token-trailing-crlf",
        env(CLOUDFLARE_API_TOKEN=CANARY_TOKEN + "\r\n"),
        token_error("ends with a line break (as `echo` or a file's last line adds)"),
    ),
    (
        "token-trailing-space",
        env(CLOUDFLARE_API_TOKEN=CANARY_TOKEN + "  "),
        token_error("starts or ends with whitespace"),
    ),
    (
        "token-leading-tab",
        env(CLOUDFLARE_API_TOKEN="\t" + CANARY_TOKEN),
        token_error("starts or ends with whitespace"),
    ),
    (
        "token-inner-space",
        env(CLOUDFLARE_API_TOKEN="Bearer " + CANARY_TOKEN),
        token_error("contains whitespace"),
    ),
    (
        "token-control-char",
        env(CLOUDFLARE_API_TOKEN=CANARY_TOKEN + "\x1b"),
        token_error("contains a control character"),
    ),
    (
        "token-non-ascii",
        env(CLOUDFLARE_API_TOKEN=CANARY_TOKEN + "\u00e9"),
        token_error("contains a character outside printable ASCII"),
    ),
    (
        "token-only-whitespace",
        env(CLOUDFLARE_API_TOKEN="   \n"),
        token_error("holds only whitespace"),
    ),
    (
        "token-empty",
        env(CLOUDFLARE_API_TOKEN=""),
        "Error: CLOUDFLARE_API_TOKEN is not set: create an API token with the 'Workers AI "
        "Write' permission and export it, or try reconciler with --sandbox",
    ),
    (
        "base-url-with-credentials",
        env(CLOUDFLARE_API_BASE_URL=f"https://user:{CANARY_TOKEN}@127.0.0.1:1/client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL carries credentials before the host (user:password@); "
        "reconciler sends the token from CLOUDFLARE_API_TOKEN and refuses credentials in the "
        "URL, where they would be shown in messages and recorded in the lockfile",
    ),
    (
        "base-url-with-token-query",
        env(CLOUDFLARE_API_BASE_URL=f"https://127.0.0.1:1/client/v4?token={CANARY_TOKEN}"),
        "Error: CLOUDFLARE_API_BASE_URL has a query string or fragment (?... or #...); "
        f"{URL_SHAPE}, and a token belongs in CLOUDFLARE_API_TOKEN",
    ),
    (
        "base-url-crlf",
        env(CLOUDFLARE_API_BASE_URL="https://127.0.0.1:1/client/v4\r\nX-Injected: 1"),
        "Error: CLOUDFLARE_API_BASE_URL contains a line break or another control character; "
        "set it again",
    ),
    (
        "base-url-trailing-newline",
        env(CLOUDFLARE_API_BASE_URL="https://127.0.0.1:1/client/v4\n"),
        "Error: CLOUDFLARE_API_BASE_URL contains a line break or another control character; "
        "set it again",
    ),
    (
        "base-url-ftp",
        env(CLOUDFLARE_API_BASE_URL="ftp://127.0.0.1:1/client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL does not start with https:// (or http:// for a local "
        f"endpoint); {URL_SHAPE}",
    ),
    (
        "base-url-no-scheme",
        env(CLOUDFLARE_API_BASE_URL="localhost:8787/client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL does not start with https:// (or http:// for a local "
        f"endpoint); {URL_SHAPE}",
    ),
    (
        "base-url-non-ascii",
        env(CLOUDFLARE_API_BASE_URL="https://ex\u00e4mple.com/client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL contains a character outside ASCII; write the host in "
        "its ASCII (xn--) form and percent-encode the path",
    ),
    (
        "base-url-no-host",
        env(CLOUDFLARE_API_BASE_URL="https:///client/v4"),
        f"Error: CLOUDFLARE_API_BASE_URL names no host; {URL_SHAPE}",
    ),
    (
        "base-url-bad-port",
        env(CLOUDFLARE_API_BASE_URL="https://127.0.0.1:99999/client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL is not a valid URL (its port or host cannot be read); "
        + URL_SHAPE,
    ),
    (
        "http-attempts-not-a-number",
        env(RECONCILER_HTTP_ATTEMPTS="five"),
        "Error: RECONCILER_HTTP_ATTEMPTS must be a whole number of attempts from 1 to 100",
    ),
    (
        "http-backoff-negative",
        env(RECONCILER_HTTP_BACKOFF="-1"),
        "Error: RECONCILER_HTTP_BACKOFF must be a number of seconds from 0 to 300",
    ),
]

CASES += [
    (
        "yaml-escape-character",
        edit(DESCRIPTION, "description: Answers \x1b[2J from the FAQ"),
        "{config}:24:26: error: invalid YAML: unacceptable character #x001b: special "
        "characters are not allowed",
    ),
    (
        "yaml-nul-byte",
        write_bytes(b"version: 1\nfinetunes: []\n\x00\n"),
        "{config}:3:1: error: invalid YAML: unacceptable character #x0000: special "
        "characters are not allowed",
    ),
]

# Hidden characters in what the config or the environment says are written out in the message
# (base.untrusted), never printed raw: terminal escapes, OSC 52 and OSC 8, bidi overrides.
ACCOUNT_RULE = (
    "does not match ^[0-9a-fA-F]{32}$ (A Cloudflare account id: 32 hexadecimal characters. "
    "${ENV} references are resolved first.)"
)
CASES += [
    (
        "account-id-osc52-clipboard",
        env(CLOUDFLARE_ACCOUNT_ID="\x1b]52;c;eA==\x07"),
        "{config}:6:17: error: providers.cloudflare.account_id: '\\x1b]52;c;eA==\\x07' "
        + ACCOUNT_RULE,
    ),
    (
        "account-id-bidi-override",
        env(CLOUDFLARE_ACCOUNT_ID="0123456789abcdef\u202e0123456789abcdef"),
        "{config}:6:17: error: providers.cloudflare.account_id: "
        "'0123456789abcdef\\u202e0123456789abcdef' " + ACCOUNT_RULE,
    ),
    (
        "name-bidi-override",
        edit("name: faq-bot-v1", "name: faq-bot\u202e1v"),
        "{config}:21:11: error: finetunes[1].name: 'faq-bot\\u202e1v' does not match "
        "^[A-Za-z0-9][A-Za-z0-9._-]*$ (The finetune's name, unique in its account: letters, "
        "digits, '.', '_' and '-', starting with a letter or digit.)",
    ),
    (
        "model-bidi-override",
        edit('model: "@cf/google/gemma-2b-it-lora"', 'model: "@cf/google/gemma\u202e-2b-it-lora"'),
        "{config}:23:12: error: finetunes[1].model: '@cf/google/gemma\\u202e-2b-it-lora' does "
        "not match ^@[A-Za-z0-9._-]+/[A-Za-z0-9._/-]+$ (The LoRA-capable base model, e.g. "
        "@cf/mistral/mistral-7b-instruct-v0.2-lora.)",
    ),
    (
        "adapter-path-osc52-clipboard",
        edit("adapter: adapters/faq-v1/", 'adapter: "adapters/faq\\x1b]52;c;x\\x07/"'),
        "{config}:25:14: error: finetune 'faq-bot-v1': adapter folder "
        "adapters/faq\\x1b]52;c;x\\x07/ does not exist",
    ),
    (
        "unknown-key-bidi-isolate",
        edit(DESCRIPTION, DESCRIPTION + '\n    "x\\u2066y": 1'),
        "{config}:25:5: error: finetunes[1].x\\u2066y: unknown key 'x\\u2066y'; expected one "
        "of: account_id, adapter, checks, description, keep, model, name, provider, public, "
        "versioning",
    ),
    (
        "base-url-osc8-link",
        env(CLOUDFLARE_API_BASE_URL="https://api.example/\x1b]8;;x\x1b\\client/v4"),
        "Error: CLOUDFLARE_API_BASE_URL contains a line break or another control character; "
        "set it again",
    ),
]


def outputs_at(path: str, *more: tuple[str, str]) -> Break:
    """An outputs: list of one path (issue 20, M3 and L2), with further (old, new) edits."""

    def apply(config: Path) -> None:
        text = config.read_text().replace("version: 1\n", f"version: 1\noutputs:\n  - {path}\n")
        for old, new in more:
            assert old in text, old
            text = text.replace(old, new)
        config.write_text(text)

    return apply


OUTPUTS_AT = "{config}:4:11: error: outputs[0].path: "
CASES += [
    (
        "outputs-absolute",
        outputs_at("path: /tmp/elsewhere/loras.json"),
        OUTPUTS_AT + '"/tmp/elsewhere/loras.json" is absolute; outputs are written inside the '
        "config's folder: give a path relative to it",
    ),
    (
        "outputs-parent-folder",
        outputs_at("path: worker/../../loras.json"),
        OUTPUTS_AT + "\"worker/../../loras.json\" leaves the config's folder ('..'); outputs "
        "are written inside it",
    ),
    (
        "outputs-in-the-state-folder",
        outputs_at("path: .reconciler/catalogue.json"),
        OUTPUTS_AT + '".reconciler/catalogue.json" is inside .reconciler/, reconciler\'s own '
        "state; choose another folder",
    ),
    (
        "outputs-control-character",
        outputs_at('path: "worker/\\e]52;c;aGk=\\a.json"'),
        OUTPUTS_AT + '"worker/\\u001b]52;c;aGk=\\u0007.json" has a control character; give a '
        "plain path relative to the config's folder",
    ),
    (
        "outputs-one-file-twice",
        outputs_at("path: worker/loras.json\n  - path: worker//./loras.json"),
        '{config}:5:11: error: outputs[1].path: "worker//./loras.json" names the same file as '
        "outputs[0].path (worker/loras.json)",
    ),
    (
        "outputs-env-names-collide",
        outputs_at("path: worker/loras.env", ("name: faq-bot-v1", "name: Support_Bot.v3")),
        OUTPUTS_AT + '"worker/loras.env" holds one line per finetune, and Support_Bot.v3 and '
        "support-bot-v3 both become RECONCILER_SUPPORT_BOT_V3; rename one of them",
    ),
]

# The provider API boundary's own settings, refused before any request (issue 20): values
# a shell or a template can produce that are not a count or a delay
ATTEMPTS = "Error: RECONCILER_HTTP_ATTEMPTS must be a whole number of attempts from 1 to 100"
BACKOFF = "Error: RECONCILER_HTTP_BACKOFF must be a number of seconds from 0 to 300"
CASES += [
    ("http-attempts-zero", env(RECONCILER_HTTP_ATTEMPTS="0"), ATTEMPTS),
    ("http-attempts-above-bound", env(RECONCILER_HTTP_ATTEMPTS="101"), ATTEMPTS),
    ("http-attempts-fraction", env(RECONCILER_HTTP_ATTEMPTS="2.5"), ATTEMPTS),
    ("http-backoff-nan", env(RECONCILER_HTTP_BACKOFF="nan"), BACKOFF),
    ("http-backoff-infinite", env(RECONCILER_HTTP_BACKOFF="1e400"), BACKOFF),
]

CASES += [
    (
        "outputs-over-an-adapter-file",
        outputs_at("path: adapters/../adapters/faq-v1/adapter_config.json"),
        OUTPUTS_AT + '"adapters/../adapters/faq-v1/adapter_config.json" is the '
        "adapter_config.json of finetune faq-bot-v1; an apply would overwrite what it uploads",
    ),
]

CATALOGUE_TTL = "Error: RECONCILER_CATALOGUE_TTL must be a number of seconds >= 0 (unset: a day)"
CASES += [
    ("catalogue-ttl-not-a-number", env(RECONCILER_CATALOGUE_TTL="abc"), CATALOGUE_TTL),
    ("catalogue-ttl-negative", env(RECONCILER_CATALOGUE_TTL="-1"), CATALOGUE_TTL),
]

# A lockfile's versions against their names (issue 20, L3): refused at read, naming the records
V_OLD = {**ENTRY, "version": "cd41c3d4", "remote_name": "old-cd41c3d4"}
V_NAME = "(a version's remote name is NAME-VERSION, the content version it records)"
CASES += [
    (
        "lock-version-key-against-its-remote-name",
        lock(
            json.dumps(
                {
                    "format_version": 1,
                    "finetunes": {},
                    "versions": {
                        "old": {
                            "cd41c3d4": {**ENTRY, "remote_name": "old-0badf00d", "state": "retired"}
                        }
                    },
                }
            )
        ),
        "Error: {lock}: versions.old.cd41c3d4 records the remote name 'old-0badf00d', but "
        f"version cd41c3d4 of old is named old-cd41c3d4 {V_NAME}; restore it from version "
        "control, or correct it by hand",
    ),
    (
        "lock-current-version-against-its-remote-name",
        lock(
            json.dumps(
                {"format_version": 1, "finetunes": {"old": {**V_OLD, "version": "0badf00d"}}}
            )
        ),
        "Error: {lock}: finetunes.old records the remote name 'old-cd41c3d4', but version "
        f"0badf00d of old is named old-0badf00d {V_NAME}; restore it from version control, or "
        "correct it by hand",
    ),
    (
        "lock-two-records-of-one-remote-name",
        lock(
            json.dumps(
                {
                    "format_version": 1,
                    "finetunes": {"old": V_OLD, "old-cd41c3d4": {**ENTRY, "id": "y"}},
                }
            )
        ),
        "Error: {lock}: finetunes.old and finetunes.old-cd41c3d4 both record the remote name "
        f"'old-cd41c3d4' (cloudflare account {'0' * 32}), but a remote finetune has one record "
        "(a bad merge?). Keep the record that is right and delete the other, or restore the "
        "lockfile from version control; nothing was changed",
    ),
]
