"""The sandbox's Hub (/hf) as huggingface_hub sees it: the official client works unchanged, and
the HTTP answers carry what the Hub's do (and never advertise Xet)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest
from conftest import QUICKSTART, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.auth import token_id
from reconciler.sandbox.hub.store import HubStore
from reconciler.sandbox.server import SandboxServer

REPO = "acme/support-lora"
ADAPTER = QUICKSTART / "adapters" / "support-v3"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"

hf = pytest.importorskip("huggingface_hub")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pushed(sb: SandboxServer, tmp_path: Path) -> str:
    folder = tmp_path / "repo"
    (folder / "checkpoint-500").mkdir(parents=True)
    for name in (CONFIG, WEIGHTS):
        (folder / name).write_bytes((ADAPTER / name).read_bytes())
        (folder / "checkpoint-500" / name).write_bytes((ADAPTER / name).read_bytes())
    return HubStore(sb.data_dir).push(REPO, folder, tag="v1")


def test_hf_push_prints_the_commit_last(cli: Cli, tmp_path: Path) -> None:
    result = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", tmp_path / "d", "--tag", "v1")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"[0-9a-f]{40}", result.stdout.splitlines()[-1])
    again = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", tmp_path / "d")
    assert again.stdout.splitlines()[-1] != result.stdout.splitlines()[-1]  # a new commit
    bad = cli("sandbox", "hf-push", "not a repo", ADAPTER, "--data", tmp_path / "d")
    assert bad.exit_code == 1 and "is not a repo id" in bad.output


def test_official_client_reads_models_unchanged(
    sb: SandboxServer, pushed: str, tmp_path: Path
) -> None:
    api = hf.HfApi(endpoint=sb.hub_url, token=False)
    info = api.model_info(REPO, revision="v1", files_metadata=True)
    assert info.sha == pushed
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings[WEIGHTS].lfs.sha256 == sha256(ADAPTER / WEIGHTS)
    assert siblings[WEIGHTS].size == (ADAPTER / WEIGHTS).stat().st_size
    assert (
        siblings[CONFIG].lfs is None and siblings[CONFIG].size == (ADAPTER / CONFIG).stat().st_size
    )

    refs = api.list_repo_refs(REPO)
    assert [(r.name, r.target_commit) for r in refs.tags] == [("v1", pushed)]
    assert [(r.name, r.target_commit) for r in refs.branches] == [("main", pushed)]
    tree = {e.path for e in api.list_repo_tree(REPO, revision=pushed, recursive=True)}
    assert f"checkpoint-500/{WEIGHTS}" in tree and "checkpoint-500" in tree

    for subfolder in (None, "checkpoint-500"):
        got = hf.hf_hub_download(
            REPO,
            WEIGHTS,
            subfolder=subfolder,
            revision="v1",
            endpoint=sb.hub_url,
            cache_dir=tmp_path / "cache",
            token=False,
        )
        assert Path(got).read_bytes() == (ADAPTER / WEIGHTS).read_bytes()  # the pushed bytes
        assert pushed in got  # cached under the commit the tag named

    fs = hf.HfFileSystem(endpoint=sb.hub_url, token=False)
    with fs.open(f"{REPO}/{WEIGHTS}", "rb", revision=pushed) as f:
        f.seek(8)
        assert f.read(16) == (ADAPTER / WEIGHTS).read_bytes()[8:24]  # range reads

    errors = hf.utils
    with pytest.raises(errors.RepositoryNotFoundError):
        api.model_info("acme/nothing")
    with pytest.raises(errors.RevisionNotFoundError):
        api.model_info(REPO, revision="v9")
    with pytest.raises(errors.EntryNotFoundError):
        hf.hf_hub_download(
            REPO, "missing.json", endpoint=sb.hub_url, cache_dir=tmp_path / "c", token=False
        )


def test_resolve_answers_as_the_hub_does(sb: SandboxServer, pushed: str) -> None:
    data = (ADAPTER / WEIGHTS).read_bytes()
    with httpx.Client(base_url=sb.hub_url) as client:
        head = client.head(f"/{REPO}/resolve/v1/{WEIGHTS}")
        # an LFS file: a redirect carrying its commit, its sha256 and its size
        assert head.status_code == 302
        assert head.headers["X-Repo-Commit"] == pushed
        assert head.headers["X-Linked-Etag"] == f'"{sha256(ADAPTER / WEIGHTS)}"'
        assert head.headers["X-Linked-Size"] == str(len(data))
        assert head.headers["ETag"] and head.headers["Location"]
        small = client.head(f"/{REPO}/resolve/{pushed}/{CONFIG}")
        assert small.status_code == 200 and small.headers["X-Repo-Commit"] == pushed
        assert small.headers["Content-Length"] == str((ADAPTER / CONFIG).stat().st_size)
        # Range: 206 with exactly the slice, wherever the redirect leads
        part = client.get(
            f"/{REPO}/resolve/v1/{WEIGHTS}", headers={"Range": "bytes=8-19"}, follow_redirects=True
        )
        assert part.status_code == 206 and part.content == data[8:20]
        assert part.headers["Content-Range"] == f"bytes 8-19/{len(data)}"
        tail = client.get(
            f"/{REPO}/resolve/v1/{WEIGHTS}", headers={"Range": "bytes=-5"}, follow_redirects=True
        )
        assert tail.content == data[-5:]
        beyond = client.get(
            f"/{REPO}/resolve/v1/{WEIGHTS}",
            headers={"Range": f"bytes={len(data)}-"},
            follow_redirects=True,
        )
        assert beyond.status_code == 416
        for path, status, code in (
            # anonymous: a repo that is not there is a 401, as a private one is
            (f"/acme/none/resolve/main/{CONFIG}", 401, "RepoNotFound"),
            (f"/{REPO}/resolve/v9/{CONFIG}", 404, "RevisionNotFound"),
            (f"/{REPO}/resolve/v1/nope.json", 404, "EntryNotFound"),
        ):
            answer = client.get(path)
            assert answer.status_code == status and answer.headers["X-Error-Code"] == code
        # never Xet: no header, link or listing field that would make a client use it
        every = [head, small, part, client.get(f"/api/models/{REPO}/tree/v1")]
        for answer in every:
            assert not any(k.lower().startswith("x-xet") for k in answer.headers)
            assert "xet" not in answer.headers.get("Link", "")
        assert "xetHash" not in every[-1].text


def test_hf_push_makes_branches_pull_requests_and_private_or_gated_repos(
    cli: Cli, tmp_path: Path
) -> None:
    data = tmp_path / "d"

    def push(*options: str) -> list[str]:
        result = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", data, *options)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    main = push()[-1]
    release = push("--branch", "release/v3")
    assert release[0].endswith("(release/v3)")
    opened = push("--pr")
    assert opened[0].endswith("(refs/pr/1)")
    onto = push("--branch", "refs/pr/1", "--tag", "pr-head")[-1]
    assert push("--pr", "--branch", "release/v3")[0].endswith("(refs/pr/2)")
    repo = HubStore(data).repo(REPO)
    assert repo is not None
    assert repo.branches == {"main": main, "release/v3": release[-1]}
    assert repo.prs[1] == onto == repo.tags["pr-head"]
    assert repo.commits[repo.prs[2]].files.keys() == repo.commits[release[-1]].files.keys()
    assert repo.access.private is False and repo.access.gated is False

    push("--private", "--grant", DEFAULT_TOKEN)
    push("--gated")  # keeps private and the grant
    repo = HubStore(data).repo(REPO)
    assert repo is not None and repo.access.private and repo.access.gated
    assert repo.access.granted == {token_id(DEFAULT_TOKEN)}  # the id, never the token
    assert DEFAULT_TOKEN not in (data / "hub" / "repos" / f"{REPO}.json").read_text()
    push("--public", "--ungated")
    repo = HubStore(data).repo(REPO)
    assert repo is not None and not repo.access.private and not repo.access.gated

    for options, says in (
        (("--branch", "refs/pr/7"), "has no pull request refs/pr/7"),
        (("--pr", "--branch", "nowhere"), "has no branch nowhere"),
        (("--branch", "refs/heads/main"), "not a usable tag or branch name"),
    ):
        refused = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", data, *options)
        assert refused.exit_code == 1 and says in refused.output, refused.output
    bad = cli("sandbox", "hf-push", REPO, ADAPTER, "--data", data, "--grant", "a secret!")
    assert bad.exit_code == 1 and "--grant" in bad.output and "a secret!" not in bad.output
