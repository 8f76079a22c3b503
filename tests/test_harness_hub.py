"""Proof that the fake Hub answers the real huggingface_hub 2.4 client as the suite assumes."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import httpx
import huggingface_hub
import pytest
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.harness.fakehub import VALID_TOKEN, FakeHub
from tests.harness.fixtures_hub import HubEnv

BIG = 20 * 1024 * 1024 + 123  # odd size, so no chunk boundary lines up with the end
MEDIUM = 1_500_000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model-like folder: random weights, small json files and a file in a subfolder."""
    folder = tmp_path_factory.mktemp("hub_model")
    (folder / "model.safetensors").write_bytes(os.urandom(BIG))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})
    )
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [mlx]\n---\n# Tiny\n")
    (folder / "extra").mkdir()
    (folder / "extra" / "medium.bin").write_bytes(os.urandom(MEDIUM))
    return folder


@pytest.fixture(scope="module")
def repo(fake_hub_session: FakeHub, model_dir: Path) -> tuple[str, str]:
    repo_id = "harness/tiny-model"
    return repo_id, fake_hub_session.add_repo(repo_id, model_dir, downloads=5, likes=2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_list_models_search_author_sort_limit(fake_hub: FakeHub) -> None:
    fake_hub.add_listing_only("sorty/alpha-4bit", downloads=10, likes=300, tags=["mlx"])
    fake_hub.add_listing_only("sorty/beta-8bit", downloads=30, likes=100, library_name="transformers")
    fake_hub.add_listing_only("sorty/gamma-4bit", downloads=20, likes=200, tags=["mlx"])
    api = HfApi(endpoint=fake_hub.url)

    assert [m.id for m in api.list_models(author="sorty", sort="downloads")] == [
        "sorty/beta-8bit", "sorty/gamma-4bit", "sorty/alpha-4bit",
    ]  # fmt: skip
    assert [m.id for m in api.list_models(author="sorty", sort="likes", limit=2)] == [
        "sorty/alpha-4bit", "sorty/gamma-4bit",
    ]  # fmt: skip
    assert [m.id for m in api.list_models(search="4BIT", author="sorty", sort="created_at")] == [
        "sorty/gamma-4bit", "sorty/alpha-4bit",
    ]  # fmt: skip
    assert {m.id for m in api.list_models(author="sorty", filter="mlx")} == {
        "sorty/alpha-4bit",
        "sorty/gamma-4bit",
    }
    first = next(iter(api.list_models(search="sorty/beta", full=True)))
    assert (first.library_name, first.downloads, first.sha is not None) == ("transformers", 30, True)
    assert list(api.list_models(author="nobody-at-all")) == []


def test_list_models_follows_next_links_across_pages(fake_hub: FakeHub) -> None:
    for i in range(250):
        fake_hub.add_listing_only(f"pages/m{i:03d}", downloads=i)
    api = HfApi(endpoint=fake_hub.url)

    ids = [m.id for m in api.list_models(author="pages", sort="downloads")]
    assert ids == [f"pages/m{i:03d}" for i in range(249, -1, -1)]
    pages = [r for r in fake_hub.requests if r.path == "/api/models"]
    assert (
        len(pages) == 3 and "cursor" not in pages[0].params and all("cursor" in p.params for p in pages[1:])
    )
    assert all(p.params["author"] == ["pages"] and p.params["sort"] == ["downloads"] for p in pages)

    fake_hub.requests.clear()
    assert len(list(api.list_models(author="pages", limit=120))) == 120
    assert len([r for r in fake_hub.requests if r.path == "/api/models"]) == 2  # stops once it has enough


def test_model_info_with_files_metadata_gives_sizes_and_hashes(
    fake_hub: FakeHub, repo: tuple[str, str], model_dir: Path
) -> None:
    repo_id, commit = repo
    info = HfApi(endpoint=fake_hub.url).model_info(repo_id, files_metadata=True)
    files = {s.rfilename: s for s in info.siblings}
    assert info.sha == commit and len(commit) == 40
    assert set(files) == {
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
        "README.md",
        "extra/medium.bin",
    }
    assert files["model.safetensors"].size == BIG
    assert files["model.safetensors"].lfs.sha256 == sha256(model_dir / "model.safetensors")
    assert files["extra/medium.bin"].lfs is not None  # over 1 MB: stored in LFS
    cfg = (model_dir / "config.json").read_bytes()
    assert files["config.json"].lfs is None
    assert files["config.json"].blob_id == hashlib.sha1(b"blob %d\0" % len(cfg) + cfg).hexdigest()
    assert info.card_data["license"] == "apache-2.0" and info.config["model_type"] == "qwen2"
    assert info.config["tokenizer_config"] == {"eos_token": "<|im_end|>"}
    assert all(s.size is None for s in HfApi(endpoint=fake_hub.url).model_info(repo_id).siblings)


def test_list_repo_tree_recursive_and_not(fake_hub: FakeHub, repo: tuple[str, str]) -> None:
    api = HfApi(endpoint=fake_hub.url)
    top = {e.path: type(e).__name__ for e in api.list_repo_tree(repo[0])}
    assert top["extra"] == "RepoFolder" and "extra/medium.bin" not in top
    deep = {e.path: e for e in api.list_repo_tree(repo[0], recursive=True)}
    assert deep["extra/medium.bin"].size == MEDIUM
    assert [e.path for e in api.list_repo_tree(repo[0], path_in_repo="extra")] == ["extra/medium.bin"]


def test_snapshot_download_matches_originals_byte_for_byte(
    hf_env: HubEnv, repo: tuple[str, str], model_dir: Path
) -> None:
    repo_id, commit = repo
    snap = Path(snapshot_download(repo_id, endpoint=hf_env.endpoint))
    assert snap == hf_env.cache_dir / "models--harness--tiny-model" / "snapshots" / commit
    for name in ("model.safetensors", "config.json", "README.md", "extra/medium.bin"):
        assert sha256(snap / name) == sha256(model_dir / name), name
    # LFS blobs are stored under their sha256 (the ETag), git files under their blob sha1
    assert (snap / "model.safetensors").resolve().name == sha256(model_dir / "model.safetensors")
    cached = {r.repo_id: r for r in scan_cache_dir(hf_env.cache_dir).repos}
    assert cached[repo_id].size_on_disk == sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert hf_env.hub.bytes_served(repo_id) == cached[repo_id].size_on_disk


def test_hf_env_points_module_level_helpers_at_the_fake_hub(hf_env: HubEnv, repo: tuple[str, str]) -> None:
    # no endpoint= anywhere: the patched constants and the module-level HfApi must be used
    assert any(m.id == repo[0] for m in huggingface_hub.list_models(author="harness"))
    path = Path(hf_hub_download(repo[0], "config.json"))
    assert path.is_relative_to(hf_env.cache_dir) and json.loads(path.read_text())["model_type"] == "qwen2"
    assert scan_cache_dir().repos  # default cache dir is the test's
    meta = get_hf_file_metadata(hf_hub_url(repo[0], "model.safetensors"))
    assert (meta.commit_hash, meta.size, meta.location.startswith(hf_env.endpoint)) == (repo[1], BIG, True)


def test_range_requests_answer_206_with_the_right_bytes(
    fake_hub: FakeHub, repo: tuple[str, str], model_dir: Path
) -> None:
    data = (model_dir / "model.safetensors").read_bytes()
    url = f"{fake_hub.url}/{repo[0]}/resolve/main/model.safetensors"
    with httpx.Client() as client:
        tail = client.get(url, headers={"Range": f"bytes={BIG - 1000}-"})
        mid = client.get(url, headers={"Range": "bytes=10-19"})
        bad = client.get(url, headers={"Range": f"bytes={BIG}-"})
        head = client.head(url)
    assert (tail.status_code, tail.content) == (206, data[-1000:])
    assert tail.headers["Content-Range"] == f"bytes {BIG - 1000}-{BIG - 1}/{BIG}"
    assert (mid.status_code, mid.content, mid.headers["Content-Length"]) == (206, data[10:20], "10")
    assert bad.status_code == 416
    assert (
        head.headers["ETag"].strip('"')
        == head.headers["X-Linked-Etag"].strip('"')
        == sha256(model_dir / "model.safetensors")
    )
    assert (head.headers["X-Repo-Commit"], head.headers["X-Linked-Size"]) == (repo[1], str(BIG))


def test_errors_map_to_the_clients_exceptions(
    fake_hub: FakeHub, repo: tuple[str, str], model_dir: Path, tmp_path: Path
) -> None:
    api = HfApi(endpoint=fake_hub.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("harness/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo[0], revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo[0], "missing.json", endpoint=fake_hub.url, cache_dir=tmp_path)

    fake_hub.add_repo("harness/gated", model_dir, gated=True)
    assert api.model_info("harness/gated").gated == "manual"  # metadata stays public
    with pytest.raises(GatedRepoError):
        hf_hub_download(
            "harness/gated", "config.json", endpoint=fake_hub.url, cache_dir=tmp_path, token=False
        )
    assert hf_hub_download(
        "harness/gated", "config.json", endpoint=fake_hub.url, cache_dir=tmp_path, token=VALID_TOKEN
    )

    fake_hub.status_overrides[repo[0]] = 500
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info(repo[0])
    assert err.value.response.status_code == 500 and not isinstance(err.value, RepositoryNotFoundError)
    fake_hub.status_overrides[repo[0]] = 404
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(hf_hub_url(repo[0], "config.json", endpoint=fake_hub.url))


def test_private_repos_need_a_token(fake_hub: FakeHub, model_dir: Path) -> None:
    fake_hub.add_repo("secret/model", model_dir, private=True)
    anon, authed = HfApi(endpoint=fake_hub.url, token=False), HfApi(endpoint=fake_hub.url, token=VALID_TOKEN)
    with pytest.raises(RepositoryNotFoundError):
        anon.model_info("secret/model")
    assert list(anon.list_models(author="secret")) == []
    assert [m.id for m in authed.list_models(author="secret")] == ["secret/model"]
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=fake_hub.url, token="hf_wrong").model_info("secret/model")
    assert err.value.response.status_code == 401


def test_whoami_accepts_only_the_valid_token(fake_hub: FakeHub) -> None:
    api = HfApi(endpoint=fake_hub.url)
    assert api.whoami(token=VALID_TOKEN)["name"] == "tester"
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        api.whoami(token="hf_nope")


def test_drop_after_bytes_cuts_the_body_once(fake_hub: FakeHub, repo: tuple[str, str]) -> None:
    fake_hub.drop_after_bytes = 100_000
    url = f"{fake_hub.url}/{repo[0]}/resolve/main/extra/medium.bin"
    got = bytearray()
    with httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as resp:
            assert resp.headers["Content-Length"] == str(MEDIUM)
            for chunk in resp.iter_bytes():
                got += chunk
        assert len(got) == 100_000
        assert len(client.get(url).content) == MEDIUM  # drop_times=1: the next download is whole
    assert fake_hub.bytes_served(repo[0]) == 100_000 + MEDIUM


def test_client_resumes_with_range_after_a_drop(
    hf_env: HubEnv, repo: tuple[str, str], model_dir: Path
) -> None:
    # huggingface_hub reads 10 MiB chunks, so it resumes from the last whole chunk it got
    hf_env.hub.drop_after_bytes = 12_000_000
    path = hf_hub_download(repo[0], "model.safetensors")
    assert sha256(Path(path)) == sha256(model_dir / "model.safetensors")
    gets = [r for r in hf_env.hub.requests if r.method == "GET" and r.filename == "model.safetensors"]
    chunk = huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE
    assert [(r.status, r.range, r.bytes_sent) for r in gets] == [
        (200, None, 12_000_000), (206, f"bytes={chunk}-", BIG - chunk),
    ]  # fmt: skip


def test_throttle_slows_a_download_measurably(fake_hub: FakeHub, repo: tuple[str, str]) -> None:
    url = f"{fake_hub.url}/{repo[0]}/resolve/main/extra/medium.bin"
    with httpx.Client() as client:
        start = time.monotonic()
        assert len(client.get(url).content) == MEDIUM
        fast = time.monotonic() - start
        fake_hub.throttle_bps = 2_000_000
        start = time.monotonic()
        assert len(client.get(url).content) == MEDIUM
        slow = time.monotonic() - start
    assert slow >= 0.9 * MEDIUM / 2_000_000 and slow < 3 * MEDIUM / 2_000_000
    assert fast < slow / 3


def test_stall_keeps_the_socket_silent_then_closes(fake_hub: FakeHub, repo: tuple[str, str]) -> None:
    fake_hub.stall_after_bytes, fake_hub.stall_seconds = 50_000, 0.6
    url = f"{fake_hub.url}/{repo[0]}/resolve/main/extra/medium.bin"
    with httpx.Client() as client:
        with (
            pytest.raises(httpx.ReadTimeout),
            client.stream("GET", url, timeout=httpx.Timeout(5, read=0.2)) as r,
        ):
            r.read()
        start = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as resp:
            assert len(resp.read()) < MEDIUM
    assert time.monotonic() - start >= 0.5
    assert fake_hub.bytes_served(repo[0]) == 100_000


def test_offline_refuses_connections_and_snapshot_falls_back_to_cache(
    hf_env: HubEnv, repo: tuple[str, str]
) -> None:
    snap = snapshot_download(repo[0], allow_patterns=["*.json"])
    hf_env.hub.offline = True
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hf_env.endpoint}/api/models")
    assert snapshot_download(repo[0], allow_patterns=["*.json"]) == snap  # the client treats it as no network
    hf_env.hub.offline = False
    assert httpx.get(f"{hf_env.endpoint}/api/models?limit=1").status_code == 200


def test_new_commit_moves_main_and_keeps_the_old_one(fake_hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    first = fake_hub.add_repo("harness/moving", tmp_path)
    (tmp_path / "config.json").write_text('{"v": 2}')
    second = fake_hub.add_repo("harness/moving", tmp_path)
    api = HfApi(endpoint=fake_hub.url)
    assert first != second and api.model_info("harness/moving").sha == second
    assert api.model_info("harness/moving", revision=first).sha == first


def test_stop_releases_threads_and_port(model_dir: Path) -> None:
    before = set(threading.enumerate())
    hub = FakeHub()
    hub.start()
    hub.add_repo("harness/stop", model_dir)
    client = httpx.Client()  # a pooled keep-alive connection stays open until the server cuts it
    assert client.get(f"{hub.url}/api/models").status_code == 200
    hub.stall_after_bytes = 0
    slow = threading.Thread(target=lambda: _swallow(client, f"{hub.url}/harness/stop/resolve/main/README.md"))
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    hub.stop()
    slow.join(timeout=5)
    client.close()
    assert time.monotonic() - started < 5  # a 30 s stall does not hold up stop()
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hub.url}/api/models")


def _swallow(client: httpx.Client, url: str) -> None:
    try:
        client.get(url)
    except httpx.HTTPError:
        return  # the server cut the stalled answer on stop(): the point of the test
