"""Write-then-rename: a failed write leaves the old file or folder and no temporary sibling; a finished one replaces it."""

import os

import pytest

from hf_sprites.atomic import atomic_folder, atomic_write_text, move_into_place, temporary_sibling


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_file_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = atomic_write_text(tmp_path / "result.json", "old")
    with pytest.raises(RuntimeError, match="boom"):
        with temporary_sibling(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and listing(tmp_path) == ["result.json"]
    assert atomic_write_text(target, "new").read_text() == "new" and listing(tmp_path) == ["result.json"]


def test_atomic_folder_replaces_an_old_folder_only_when_the_new_one_is_complete(tmp_path):
    target = tmp_path / "pipeline"
    with atomic_folder(target) as staging:
        (staging / "weights").write_text("v1")
        (staging / "extra").write_text("only in v1")
    assert listing(target) == ["extra", "weights"]
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_folder(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("boom")
    assert (target / "weights").read_text() == "v1" and listing(tmp_path) == ["pipeline"]
    with atomic_folder(target) as staging:
        (staging / "weights").write_text("v2")
        assert (target / "weights").read_text() == "v1"  # readers still see the old folder while it is written
    assert listing(target) == ["weights"] and (target / "weights").read_text() == "v2"
    assert listing(tmp_path) == ["pipeline"]
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o777 & ~current_umask())


def test_atomic_folder_without_replace_keeps_the_first_writer(tmp_path):
    target = tmp_path / "cache-entry"
    with atomic_folder(target, replace=False) as staging:
        (staging / "model").write_text("first")
    with atomic_folder(target, replace=False) as staging:
        (staging / "model").write_text("second")
    assert (target / "model").read_text() == "first" and listing(tmp_path) == ["cache-entry"]


def test_move_into_place_swaps_files_and_folders(tmp_path):
    (tmp_path / "new.txt").write_text("new")
    (tmp_path / "old.txt").write_text("old")
    move_into_place(tmp_path / "new.txt", tmp_path / "old.txt")
    assert (tmp_path / "old.txt").read_text() == "new"
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "stale").write_text("stale")
    (tmp_path / ".unet-new").mkdir()
    (tmp_path / ".unet-new" / "weights").write_text("fresh")
    move_into_place(tmp_path / ".unet-new", tmp_path / "unet")
    assert listing(tmp_path / "unet") == ["weights"] and listing(tmp_path) == ["old.txt", "unet"]


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
