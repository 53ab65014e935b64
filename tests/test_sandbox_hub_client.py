"""The sandbox's Hub as the official `huggingface_hub` client meets the real one, over HTTP on
127.0.0.1: revisions with a slash, pull request refs (`refs/pr/N`), a token the Hub does not
know, private and gated repos. Each test calls the client unchanged and checks what it returns
or raises; where the wire itself is the point, the answer is read with httpx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from conftest import CANARY_TOKEN, QUICKSTART

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.auth import token_id
from reconciler.sandbox.hub.store import AccessChange, HubStore
from reconciler.sandbox.server import SandboxServer

hf = pytest.importorskip("huggingface_hub")
errors = pytest.importorskip("huggingface_hub.errors")

REPO = "acme/support-lora"
ADAPTER = QUICKSTART / "adapters" / "support-v3"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
INVALID = "Invalid credentials in Authorization header"  # the Hub's words for a bad token


def folder(tmp_path: Path, name: str, alpha: int, extra: str | None = None) -> Path:
    """The quick start's adapter with its own lora_alpha (so each revision's bytes differ)."""
    where = tmp_path / name
    where.mkdir()
    settings = json.loads((ADAPTER / CONFIG).read_text())
    settings["lora_alpha"] = alpha
    (where / CONFIG).write_text(json.dumps(settings))
    weights = (ADAPTER / WEIGHTS).read_bytes()
    (where / WEIGHTS).write_bytes(weights)
    if extra:
        (where / extra).write_text(name)
    return where


def download(sb: SandboxServer, tmp_path: Path, name: str, revision: str, token: object) -> Path:
    got = hf.hf_hub_download(
        REPO,
        name,
        revision=revision,
        endpoint=sb.hub_url,
        token=token,
        cache_dir=tmp_path / "cache" / hashlib.sha256(repr(token).encode()).hexdigest()[:8],
    )
    return Path(got)


def test_a_branch_with_a_slash_downloads_lists_and_resolves_to_its_commit(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    store = HubStore(sandbox.data_dir)
    main = store.push(REPO, folder(tmp_path, "main", 16))
    release = store.push(REPO, folder(tmp_path, "release", 32, "RELEASE.md"), branch="release/v3")
    feature = store.push(REPO, folder(tmp_path, "feature", 64), branch="feature/x")
    api = hf.HfApi(endpoint=sandbox.hub_url, token=False)

    # the client quotes the revision whole (release%2Fv3): each call reaches that branch
    assert api.model_info(REPO, revision="release/v3").sha == release
    assert api.repo_info(REPO, revision="feature/x").sha == feature
    assert "RELEASE.md" in api.list_repo_files(REPO, revision="release/v3")
    assert "RELEASE.md" not in api.list_repo_files(REPO)  # main has no such file
    tree = api.list_repo_tree(REPO, revision="release/v3")
    assert {e.path for e in tree} == {CONFIG, WEIGHTS, "RELEASE.md"}
    branches = {r.name: r.target_commit for r in api.list_repo_refs(REPO).branches}
    assert branches == {"main": main, "release/v3": release, "feature/x": feature}

    for revision, commit, alpha in (("release/v3", release, 32), ("feature/x", feature, 64)):
        got = download(sandbox, tmp_path, CONFIG, revision, False)
        assert json.loads(got.read_text())["lora_alpha"] == alpha  # that branch's bytes
        assert got.parent.name == commit  # cached under the commit the branch names
        weights = download(sandbox, tmp_path, WEIGHTS, revision, False)  # LFS: the redirect
        assert weights.read_bytes() == (ADAPTER / WEIGHTS).read_bytes()
        url = hf.hf_hub_url(REPO, WEIGHTS, revision=revision, endpoint=sandbox.hub_url)
        assert "%2F" in url
        meta = hf.get_hf_file_metadata(url, token=False)
        assert meta.commit_hash == commit
        assert meta.etag == hashlib.sha256((ADAPTER / WEIGHTS).read_bytes()).hexdigest()
        assert meta.size == (ADAPTER / WEIGHTS).stat().st_size

    # as the Hub reads a URL: an unquoted slash ends the revision
    with httpx.Client(base_url=sandbox.hub_url) as client:
        answer = client.get(f"/{REPO}/resolve/release/v3/{CONFIG}")
        assert answer.status_code == 404
        assert answer.headers["X-Error-Code"] == "RevisionNotFound"
        assert answer.headers["X-Error-Message"] == "Invalid rev id: release"
        assert client.get(f"/{REPO}/resolve/release%2Fv3/{CONFIG}").status_code == 200
    with pytest.raises(errors.RevisionNotFoundError):
        api.model_info(REPO, revision="release/v4")


def test_a_pull_request_ref_is_served_and_listed(sandbox: SandboxServer, tmp_path: Path) -> None:
    store = HubStore(sandbox.data_dir)
    main = store.push(REPO, folder(tmp_path, "main", 16))
    ref, opened = store.open_pr(REPO, folder(tmp_path, "pr", 48, "PR.md"))
    assert ref == "refs/pr/1"
    api = hf.HfApi(endpoint=sandbox.hub_url, token=False)

    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert [(r.name, r.ref, r.target_commit) for r in refs.pull_requests] == [
        ("1", "refs/pr/1", opened)
    ]
    assert [(r.name, r.target_commit) for r in refs.branches] == [("main", main)]  # unmoved
    assert api.list_repo_refs(REPO).pull_requests is None  # only when asked, as the client says
    assert api.model_info(REPO, revision="refs/pr/1").sha == opened
    assert "PR.md" in api.list_repo_files(REPO, revision="refs/pr/1")
    got = download(sandbox, tmp_path, CONFIG, "refs/pr/1", False)
    assert json.loads(got.read_text())["lora_alpha"] == 48 and got.parent.name == opened
    fs = hf.HfFileSystem(endpoint=sandbox.hub_url, token=False)
    assert json.loads(fs.read_text(f"{REPO}@refs/pr/1/{CONFIG}"))["lora_alpha"] == 48

    # a commit on top of the PR moves it; the next PR is refs/pr/2; an unknown one is not there
    moved = store.push(REPO, folder(tmp_path, "pr-again", 96), branch="refs/pr/1")
    assert api.model_info(REPO, revision="refs/pr/1").sha == moved
    assert store.open_pr(REPO, folder(tmp_path, "second", 8))[0] == "refs/pr/2"
    with pytest.raises(errors.RevisionNotFoundError):
        download(sandbox, tmp_path, CONFIG, "refs/pr/3", False)
    with pytest.raises(ValueError, match="no pull request refs/pr/3"):
        store.push(REPO, folder(tmp_path, "nowhere", 1), branch="refs/pr/3")
    with pytest.raises(ValueError, match="not a usable tag or branch name"):
        store.push(REPO, folder(tmp_path, "branchy", 1), branch="refs/heads/x")


def test_a_token_the_hub_does_not_know_is_a_401_even_on_a_public_repo(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    HubStore(sandbox.data_dir).push(REPO, folder(tmp_path, "main", 16))
    bad = "hf_not_a_token_this_hub_knows"
    calls = {
        "model_info": lambda: hf.HfApi(endpoint=sandbox.hub_url, token=bad).model_info(REPO),
        "list_repo_files": lambda: hf.HfApi(endpoint=sandbox.hub_url, token=bad).list_repo_files(
            REPO
        ),
        "hf_hub_download": lambda: download(sandbox, tmp_path, CONFIG, "main", bad),
    }
    for name, call in calls.items():
        with pytest.raises(errors.HfHubHTTPError) as raised:
            call()
        # a 401 that says the token is wrong, not "no such repo"
        assert not isinstance(raised.value, errors.RepositoryNotFoundError), name
        assert raised.value.response.status_code == 401, name
        assert raised.value.server_message == INVALID, name
        assert bad not in str(raised.value)
    # the same repo with no token, or with a token the sandbox serves
    for token in (False, DEFAULT_TOKEN, CANARY_TOKEN):
        assert hf.HfApi(endpoint=sandbox.hub_url, token=token).model_info(REPO).private is False
    with httpx.Client(base_url=sandbox.hub_url) as client:
        for header in ("Bearer hf_wrong", "Basic dXNlcjpwYXNz", f"Bearer {DEFAULT_TOKEN}x"):
            answer = client.get(f"/api/models/{REPO}", headers={"Authorization": header})
            assert answer.status_code == 401 and "X-Error-Code" not in answer.headers
            assert answer.json() == {"error": INVALID}
        # before anything else: a repo that is not there answers the same
        answer = client.get("/api/models/acme/none", headers={"Authorization": "Bearer hf_x"})
        assert answer.status_code == 401 and answer.json() == {"error": INVALID}


def test_a_private_repo_is_not_there_for_whoever_it_does_not_grant(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    access = AccessChange(private=True, grant=(token_id(DEFAULT_TOKEN),))
    commit = HubStore(sandbox.data_dir).push(REPO, folder(tmp_path, "main", 16), access=access)

    # anonymous: 401 RepoNotFound, exactly as for a repo that does not exist
    anonymous = hf.HfApi(endpoint=sandbox.hub_url, token=False)
    for repo in (REPO, "acme/nothing-here"):
        with pytest.raises(errors.RepositoryNotFoundError) as raised:
            anonymous.model_info(repo)
        assert raised.value.response.status_code == 401
        assert raised.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(errors.RepositoryNotFoundError):
        download(sandbox, tmp_path, CONFIG, "main", False)
    # a user the repo does not grant: 404 RepoNotFound, for info, listing and files alike
    other = hf.HfApi(endpoint=sandbox.hub_url, token=CANARY_TOKEN)
    for call in (
        lambda: other.model_info(REPO),
        lambda: other.list_repo_files(REPO),
        lambda: other.list_repo_refs(REPO),
        lambda: download(sandbox, tmp_path, WEIGHTS, "main", CANARY_TOKEN),
    ):
        with pytest.raises(errors.RepositoryNotFoundError) as raised:
            call()
        assert raised.value.response.status_code == 404
        assert not isinstance(raised.value, errors.GatedRepoError)
    # the granted token reads it all
    granted = hf.HfApi(endpoint=sandbox.hub_url, token=DEFAULT_TOKEN)
    info = granted.model_info(REPO)
    assert info.private is True and info.sha == commit
    got = download(sandbox, tmp_path, WEIGHTS, "main", DEFAULT_TOKEN)
    assert got.read_bytes() == (ADAPTER / WEIGHTS).read_bytes()


def test_a_gated_repo_shows_its_metadata_and_gives_files_only_to_granted_tokens(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    access = AccessChange(gated=True, grant=(token_id(DEFAULT_TOKEN),))
    commit = HubStore(sandbox.data_dir).push(REPO, folder(tmp_path, "main", 16), access=access)

    for token in (False, CANARY_TOKEN, DEFAULT_TOKEN):  # metadata: for all
        api = hf.HfApi(endpoint=sandbox.hub_url, token=token)
        info = api.model_info(REPO, files_metadata=True)
        assert info.gated == "manual" and info.private is False and info.sha == commit
        assert set(api.list_repo_files(REPO)) == {CONFIG, WEIGHTS}

    for token, status, says in (
        (False, 401, "You must have access to it and be authenticated"),
        (CANARY_TOKEN, 403, "you are not in the authorized list"),
    ):
        for name in (CONFIG, WEIGHTS):
            with pytest.raises(errors.GatedRepoError) as raised:
                download(sandbox, tmp_path, name, "main", token)
            assert raised.value.response.status_code == status
            assert says in (raised.value.server_message or "")

    got = download(sandbox, tmp_path, WEIGHTS, "main", DEFAULT_TOKEN)
    assert got.read_bytes() == (ADAPTER / WEIGHTS).read_bytes()

    # the LFS redirect's target is held to the same rule: no way round the gate
    with httpx.Client(base_url=sandbox.hub_url) as client:
        granted = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        head = client.head(f"/{REPO}/resolve/main/{WEIGHTS}", headers=granted)
        assert head.status_code == 302
        where = sandbox.url + head.headers["Location"]
        assert client.get(where, headers=granted).status_code == 200
        answer = client.get(where)
        assert answer.status_code == 401 and answer.headers["X-Error-Code"] == "GatedRepo"
