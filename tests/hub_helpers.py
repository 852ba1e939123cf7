"""Helpers for the hub, remote-code, conversion and CLI tests: tiny saved pipelines, a recording HfApi, a Hub cache
laid out the way huggingface_hub writes it, and fresh interpreters with or without hf_sprites importable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HIDE_HF_SPRITES = '''
import sys

class _HideHfSprites:
    """Make `import hf_sprites` fail, as in an environment where the package is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "hf_sprites" or name.startswith("hf_sprites."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _HideHfSprites())
'''


def save_tiny_pipelines(root: Path) -> dict[str, Path]:
    """A conditional SpritePipeline folder and an unconditional DDPMPipeline folder (tiny ContextUnet + course schedule)."""
    import torch
    from diffusers import DDPMPipeline
    from PIL import Image

    from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler

    torch.manual_seed(0)
    unet = ContextUnet(sample_size=16, n_feat=8, n_cfeat=3).eval()
    folders = {"cond": root / "cond", "unc": root / "unc"}
    SpritePipeline(unet=unet, scheduler=SpriteScheduler()).save_pretrained(folders["cond"])
    DDPMPipeline(unet=unet, scheduler=SpriteScheduler()).save_pretrained(folders["unc"])
    for folder in folders.values():
        Image.new("RGB", (34, 18), "white").save(folder / "samples.png")
    return folders


class RecordingHfApi:
    """Stands in for `HfApi`: records every call and keeps a copy of what `upload_folder` would upload."""

    instances: list["RecordingHfApi"] = []

    def __init__(self, token=None, capture_dir: Path | None = None):
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        self.capture_dir = capture_dir
        RecordingHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        """Like the Hub: a bare name is created in the namespace of the token's user (here "someone")."""
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        full_id = repo_id if "/" in repo_id else f"someone/{repo_id}"
        return type("RepoUrl", (), {"repo_id": full_id, "url": f"https://huggingface.co/{full_id}"})()

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        if self.capture_dir is not None:
            shutil.copytree(kwargs["folder_path"], self.capture_dir)
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/0"})()


def place_in_hub_cache(folder: Path, cache_dir: Path, repo_id: str, with_tree: bool = True) -> str:
    """Put `folder` into `cache_dir` as huggingface_hub's download of `repo_id` at main would; return the commit.

    Writes `models--user--repo/snapshots/<commit>/...`, `refs/main` and (with `with_tree`) the repo's cached file
    listing `trees/<commit>.json`, which `snapshot_download` writes as a side effect of a real download.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    commit = digest.hexdigest()
    repo_root = cache_dir / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo_root / "snapshots" / commit)
    (repo_root / "refs").mkdir(parents=True, exist_ok=True)
    (repo_root / "refs" / "main").write_text(commit)
    if with_tree:
        entries = {}
        for path in files:
            data = path.read_bytes()
            blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entries[path.relative_to(folder).as_posix()] = {"size": len(data), "blob_id": blob_id}
        (repo_root / "trees").mkdir()
        (repo_root / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": entries}))
    return commit


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None, hide_hf_sprites: bool = False) -> dict:
    """Run `code` in a fresh interpreter (cwd outside the repo); it must print one JSON line last, which is returned."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)
    script = (HIDE_HF_SPRITES if hide_hf_sprites else "") + code
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
