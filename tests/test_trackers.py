"""Experiment trackers (issue 9): tensorboard and wandb (offline) runs hold the loss, the LR and the sample grids;
unknown, clashing or missing trackers fail before anything is written."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from hf_sprites.training import TrainConfigError, main, parse_train_args

# the embedded digits, a tiny ContextUnet: 32 images in batches of 8 = 4 steps an epoch, a preview at step 4
TINY_RUN = ["--n_feat", "8", "--max_train_samples", "32", "--train_batch_size", "8", "--max_train_steps", "6",
            "--eval_batch_size", "4", "--ddpm_num_inference_steps", "2", "--save_images_epochs", "1",
            "--logging_steps", "1", "--seed", "0", "--checkpointing_steps", "100", "--no-save_gif"]

pytestmark = pytest.mark.usefixtures("one_thread")


def wandb_history(run_file: Path) -> dict[str, list[str]]:
    """key -> logged JSON values, read from an offline run's `run-<id>.wandb` (a LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending, history = run_file.read_bytes(), 32768, 7, b"", {}
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            for item in record.history.item if record.WhichOneof("record_type") == "history" else ():
                history.setdefault(item.key or "/".join(item.nested_key), []).append(item.value_json)
    return history


def test_a_wandb_offline_run_holds_loss_lr_and_sample_grids(tmp_path, monkeypatch):
    if importlib.util.find_spec("wandb") is None:
        pytest.fail("wandb is not installed: pip install -c constraints.txt -e '.[test,trackers]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing outside tmp_path
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    out = tmp_path / "run"
    main([*TINY_RUN, "--output_dir", str(out), "--report_to", "wandb"])
    (run_folder,) = (out / "logs" / "wandb").glob("offline-run-*")
    history = wandb_history(next(run_folder.glob("run-*.wandb")))
    assert len(history["loss"]) == 6 and float(history["lr"][0]) == pytest.approx(2e-3)
    images = sorted(p.name for p in (run_folder / "files" / "media" / "images").glob("*.png"))
    assert [name.split("_")[0] for name in images] == ["samples-ema", "samples-raw"]
    assert not (out / "logs" / "train").exists()  # wandb alone: no tensorboard files


def test_a_tensorboard_run_holds_loss_lr_and_sample_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    main([*TINY_RUN, "--output_dir", str(out), "--logger", "tensorboard"])  # the old flag name still works
    events = EventAccumulator(str(out / "logs" / "train"), size_guidance={"images": 0})
    events.Reload()
    assert {"loss", "lr"} <= set(events.Tags()["scalars"]) and len(events.Scalars("loss")) == 6
    assert set(events.Tags()["images"]) == {"samples-raw", "samples-ema"}
    assert events.Images("samples-raw")[0].step == 4 and events.Images("samples-raw")[0].width > 0


def test_report_to_and_logger_are_one_flag_with_several_trackers():
    assert parse_train_args(["--report_to", "tensorboard", "wandb"]).logger == ("tensorboard", "wandb")
    assert parse_train_args(["--logger", "none"]).logger == ("none",)
    cfg = parse_train_args(["--report_to", "all"])
    from hf_sprites.training.output import installed_trackers, tracker_names

    assert tracker_names(cfg.logger) == installed_trackers() and "tensorboard" in installed_trackers()


BAD_TRACKERS = {
    "unknown tracker": (["--report_to", "neptune"], SystemExit, None),
    "none with another": (["--report_to", "none", "tensorboard"], TrainConfigError, "cannot be combined"),
    "missing package": (["--report_to", "wandb"], TrainConfigError, r"pip install 'hf-sprites\[trackers\]'"),
    "missing package, no extra": (["--report_to", "mlflow"], TrainConfigError, "pip install mlflow"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRACKERS))
def test_bad_trackers_fail_before_anything_is_written(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("hf_sprites.training.output.installed_trackers", lambda: ["tensorboard"])
    flags, error, message = BAD_TRACKERS[case]
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        main([*TINY_RUN, "--output_dir", str(out), *flags])
    assert not out.exists()
    if error is SystemExit:
        assert "invalid choice: 'neptune'" in capsys.readouterr().err


def test_a_settings_file_may_name_trackers_by_the_alias(tmp_path):
    settings = tmp_path / "mine.yaml"
    settings.write_text("preset: sprites\nreport_to: none\n")
    cfg = parse_train_args(["--config", str(settings)])
    assert cfg.logger == ("none",) and cfg.model == "context_unet"
    settings.write_text("report_to: [tensorboard, nope]\n")
    with pytest.raises(TrainConfigError, match=r"mine.yaml: logger must be one of tensorboard, .*, got 'nope'"):
        parse_train_args(["--config", str(settings)])


def test_the_tracker_choices_are_accelerates_own():
    import typing

    from accelerate.utils import LoggerType

    from hf_sprites.training.config import Tracker

    assert set(typing.get_args(Tracker)) == {str(kind.value) for kind in LoggerType} | {"none"}
