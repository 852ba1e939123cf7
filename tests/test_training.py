"""Training: real short runs that produce loadable pipeline folders, resume after a kill, 2-process runs,
input errors raised before anything is written, and tokens that never reach the files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_shared
from hub_helpers import RecordingHfApi, run_python

from hf_sprites.training import main, parse_train_args
from hf_sprites.training.output import STATE_FILE, list_checkpoints
from hf_sprites.training.step import DiffusionLoss, drop_context

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "examples" / "train.py"
FAKE_TOKEN = "hf_" + "T0kenThatMustNeverBeWritten1234"

# a tiny ContextUnet run: a few steps and a 3-step preview so each run takes seconds
TINY = [
    "--model", "context_unet", "--n_feat", "8", "--resolution", "8", "--train_batch_size", "8",
    "--ddpm_num_inference_steps", "3", "--eval_batch_size", "4", "--logger", "none", "--logging_steps", "1",
    "--seed", "0", "--save_images_epochs", "1000", "--save_model_epochs", "1000",
]


# One thread per process: OpenMP threads that spin while they wait make tiny models crawl when the 2 cores are
# shared with other work (and the resume test compares runs made in different processes).
QUIET_OMP = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")


def run_script(args, env=None, **kwargs) -> subprocess.Popen:
    full_env = {**os.environ, **QUIET_OMP, **(env or {})}
    return subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), *args], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- the per-batch step ------------------------------------------------------------------------------------------


def test_context_dropout_zeroes_whole_vectors_at_the_given_rate():
    torch.manual_seed(0)
    context = torch.ones(20000, 5)
    dropped = drop_context(context, 0.1)
    kept_rows = dropped.sum(dim=1) == 5
    assert torch.all(kept_rows | (dropped.sum(dim=1) == 0))
    assert abs(1 - kept_rows.float().mean().item() - 0.1) < 0.01
    assert drop_context(context, 0.0) is context


def test_context_mode_takes_the_context_from_the_wrapped_model_and_drops_it_to_the_null_context():
    from diffusers import DDPMScheduler

    from hf_sprites.models import ContextUnet

    torch.manual_seed(0)
    unet = ContextUnet(sample_size=8, in_channels=1, out_channels=1, n_feat=8, n_cfeat=3)
    wrapped = torch.nn.DataParallel(unet)  # what accelerate's DDP looks like to the loss: no `context_vector`
    seen = []
    unet.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["context"]), with_kwargs=True)
    images, labels = torch.zeros(6, 1, 8, 8), torch.tensor([0, 1, 2, 2, 1, 0])
    keep_all = DiffusionLoss(DDPMScheduler(num_train_timesteps=10), label_mode="context")
    keep_all(wrapped, images, labels)
    keep_all(wrapped, images, torch.eye(3)[labels])  # one-hot vectors give the same context as integer labels
    torch.testing.assert_close(seen[0], torch.eye(3)[labels])
    torch.testing.assert_close(seen[1], seen[0])
    DiffusionLoss(DDPMScheduler(num_train_timesteps=10), label_mode="context", cond_drop_prob=0.999)(wrapped, images,
                                                                                                    labels)
    assert seen[2].abs().sum() == 0  # (almost) every sample got the null context


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_loss_target_follows_the_prediction_type(prediction_type):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=10, prediction_type=prediction_type)
    clean = torch.rand(4, 1, 4, 4) * 2 - 1
    seen = {}

    def oracle(noisy, timesteps, return_dict=False):
        # recover the noise from x_t = a x0 + b eps, then answer exactly what the loss should target
        a = scheduler.alphas_cumprod[timesteps].sqrt().view(-1, 1, 1, 1)
        b = (1 - scheduler.alphas_cumprod[timesteps]).sqrt().view(-1, 1, 1, 1)
        noise = (noisy - a * clean) / b
        seen["t"] = timesteps
        return ({"epsilon": noise, "sample": clean, "v_prediction": a * noise - b * clean}[prediction_type],)

    loss = DiffusionLoss(scheduler, loss_type="l2")(oracle, clean)
    assert loss.item() < 1e-8
    assert seen["t"].shape == (4,) and int(seen["t"].max()) < 10


# --- configuration -------------------------------------------------------------------------------------------------


def test_explicit_flags_override_the_preset_and_no_flags_mean_the_embedded_default():
    cfg = parse_train_args(["--preset", "sprites", "--learning_rate", "5e-4"])
    assert (cfg.learning_rate, cfg.train_batch_size, cfg.ddpm_beta_schedule, cfg.ddpm_num_steps) == (5e-4, 100, "course", 500)
    default = parse_train_args(None)
    assert default.preset == "default" and default.uses_embedded_default and default.conditional
    assert parse_train_args(["--dataset_name", "x/y"]).preset is None
    assert parse_train_args(["--ddpm_beta_schedule", "cosine", "--dataset_name", "x/y"]).ddpm_beta_schedule == "squaredcos_cap_v2"


def test_the_course_schedule_and_the_model_share_the_number_of_steps():
    from hf_sprites.training.builders import build_model, build_scheduler

    for flags, steps in ((["--preset", "sprites"], 500), (["--preset", "sprites", "--ddpm_num_steps", "1000"], 1000)):
        cfg = parse_train_args(flags)
        assert build_scheduler(cfg).config.num_train_timesteps == build_model(cfg).config.num_train_timesteps == steps


def test_other_schedules_clip_as_their_model_s_course_and_skip_the_degenerate_last_step():
    from hf_sprites.training.builders import build_scheduler

    cosine = build_scheduler(parse_train_args(["--preset", "sprites_context_fast", "--ddpm_beta_schedule", "cosine"]))
    assert (cosine.config.beta_schedule, cosine.config.num_train_timesteps) == ("squaredcos_cap_v2", 500)
    assert not cosine.config.clip_sample  # ContextUnet samples as in the course, without clipping
    # diffusers' leading spacing: a 25-step sampler starts at 480, not at the last step, where the capped cosine
    # schedule leaves alpha_bar at 1e-8 and a noise estimate's error grows 10,000-fold in the predicted image
    cosine.set_timesteps(25)
    assert int(cosine.timesteps[0]) == 480 and float(cosine.alphas_cumprod[480]) > 1e-3 > float(cosine.alphas_cumprod[499])
    assert build_scheduler(parse_train_args(["--preset", "butterflies"])).config.clip_sample  # UNet2DModel: diffusers'


def test_the_sigmoid_schedule_loads_into_every_sampler():
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    from hf_sprites.training.builders import build_scheduler

    sigmoid = build_scheduler(parse_train_args(["--preset", "sprites_context_fast", "--ddpm_beta_schedule", "sigmoid"]))
    stock = DDPMScheduler(num_train_timesteps=500, beta_schedule="sigmoid")
    assert sigmoid.config.beta_schedule == "sigmoid" and torch.equal(sigmoid.betas, stock.betas)
    for sampler in (DDIMScheduler, DPMSolverMultistepScheduler):  # both raise on the name "sigmoid" alone
        assert torch.allclose(sampler.from_config(sigmoid.config).alphas_cumprod, stock.alphas_cumprod)


# --- real runs -----------------------------------------------------------------------------------------------------


def test_crawl_sprites_run_loads_with_stock_ddpm_pipeline_in_a_fresh_interpreter(tmp_path, hf_offline):
    data = require_shared("data/crawl-sprites")
    out = tmp_path / "crawl"
    main(["--preset", "sprites", "--train_data_dir", str(data), "--max_train_samples", "64", "--max_train_steps", "3",
          "--output_dir", str(out), *TINY, "--resolution", "16", "--checkpointing_steps", "2"])
    assert {"model_index.json", "README.md", "samples.png", "denoising.gif", "trainer_state.json"} <= set(os.listdir(out))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-3"]
    assert not [name for name in os.listdir(out) if name.startswith(".")], "temporary files left behind"
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    result = run_python(
        "import json, hf_sprites\n"
        "from diffusers import DDPMPipeline\n"
        f"pipe = DDPMPipeline.from_pretrained({str(out)!r})\n"
        "images = pipe(batch_size=2, num_inference_steps=3, output_type='np').images\n"
        "print(json.dumps({'shape': list(images.shape), 'unet': type(pipe.unet).__name__}))",
        cwd=tmp_path,
        env=QUIET_OMP,
    )
    assert result == {"shape": [2, 16, 16, 3], "unet": "ContextUnet"}


def test_conditional_run_saves_a_sprite_pipeline_with_a_card(sprite_arrays, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    from hf_sprites import SpritePipeline

    monkeypatch.chdir(tmp_path)  # a relative --output_dir
    out = tmp_path / "cond"
    main(["--preset", "sprites_context", "--train_data_dir", str(sprite_arrays), "--max_train_steps", "8",
          "--output_dir", "cond", *TINY, "--save_images_epochs", "1", "--save_model_epochs", "1"])
    assert os.listdir(out / "samples") == ["step-000006.png"]  # 48 images / batch 8: epoch 1 ends at step 6
    pipe = SpritePipeline.from_pretrained(out)
    assert pipe.unet.config.n_cfeat == 3
    images = pipe(class_labels=[0, 2], num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 8, 8, 3)
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "diffusers" and "diffusion-models-class" in card.data.tags
    assert "SpritePipeline.from_pretrained" in card.text
    assert json.loads((out / "training_config.json").read_text())["hyperparameters"]["cond_drop_prob"] == 0.1
    snippet = card.text.split("```python\n", 1)[1].split("```", 1)[0]
    result = run_python(snippet + "\nimport json, os\nprint(json.dumps({'saved': os.path.isfile('sample.png')}))\n",
                        cwd=tmp_path, env=QUIET_OMP)
    assert result == {"saved": True}


def test_block_norm_group_trains_saves_and_shows_a_context_unet_without_batchnorm(tmp_path):
    from huggingface_hub import ModelCard

    from hf_sprites import SpritePipeline

    main(["--output_dir", str(tmp_path / "g"), *TINY, "--max_train_steps", "2", "--block_norm", "group"])
    pipe = SpritePipeline.from_pretrained(tmp_path / "g")
    assert pipe.unet.config.block_norm == "group"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pipe.unet.modules())
    assert json.loads((tmp_path / "g" / "training_config.json").read_text())["hyperparameters"]["block_norm"] == "group"
    assert '`block_norm="group"`' in ModelCard.load(tmp_path / "g" / "README.md").text


def test_class_conditional_unet2d_and_per_item_corrupt_baseline_runs(tmp_path):
    from diffusers import DDPMPipeline

    from hf_sprites import SpritePipeline

    unet2d = ["--model", "unet2d", "--block_out_channels", "32", "32", "--down_block_types", "DownBlock2D",
              "AttnDownBlock2D", "--up_block_types", "AttnUpBlock2D", "UpBlock2D", "--ddpm_num_steps", "20",
              "--ddpm_beta_schedule", "sigmoid", "--loss_type", "huber", "--use_ema", "--gradient_accumulation_steps", "2"]
    common = [*TINY, "--max_train_steps", "2"]
    main(["--output_dir", str(tmp_path / "u"), *common, *unet2d])  # digits labels -> class embeddings
    pipe = SpritePipeline.from_pretrained(tmp_path / "u")
    assert (type(pipe.unet).__name__, pipe.unet.config.num_class_embeds, pipe.scheduler.config.beta_schedule) == (
        "UNet2DModel", 10, "sigmoid")
    assert pipe(class_labels=[3], num_inference_steps=2, output_type="np").images.shape == (1, 8, 8, 1)
    state = torch.load(tmp_path / "u" / "checkpoint-2" / STATE_FILE, weights_only=True)
    assert (state["global_step"], state["data"]["position"]) == (2, 4)  # 2 updates of 2 accumulated batches

    main(["--preset", "corrupt_baseline", "--output_dir", str(tmp_path / "c"), *common, "--model", "basic_unet",
          "--cache_on_device", "never", "--checkpointing_steps", "2"])
    pipe = DDPMPipeline.from_pretrained(tmp_path / "c")
    assert (type(pipe.unet).__name__, type(pipe.scheduler).__name__) == ("BasicUNet", "CorruptScheduler")
    assert pipe(batch_size=1, num_inference_steps=2, output_type="np").images.shape == (1, 8, 8, 1)
    state = torch.load(tmp_path / "c" / "checkpoint-2" / STATE_FILE, weights_only=True)
    assert (state["data"]["epoch"], state["data"]["position"]) == (0, 2)  # the per-item path's resumable position


# --- resume --------------------------------------------------------------------------------------------------------

RESUME_ARGS = [*TINY, "--lr_scheduler", "constant", "--lr_warmup_steps", "0", "--use_ema", "--checkpointing_steps", "2",
               "--no-save_gif"]


def final_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def test_resume_after_kill_continues_from_the_checkpoint_with_ema_intact(tmp_path):
    killed = tmp_path / "killed"
    proc = run_script(["--output_dir", str(killed), "--max_train_steps", "100000", *RESUME_ARGS])
    deadline = time.time() + 120
    while not list_checkpoints(killed) or int(list_checkpoints(killed)[-1].name.split("-")[1]) < 4:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint at step >= 4 within 120 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = list_checkpoints(killed)[-1]
    step = int(resumed_from.name.split("-")[1])
    saved = torch.load(resumed_from / STATE_FILE, weights_only=True)
    assert saved["global_step"] == step and saved["ema"]["optimization_step"] == step

    main(["--output_dir", str(killed), "--max_train_steps", str(step + 2), "--resume_from_checkpoint", "latest",
          *RESUME_ARGS])
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["global_step"] == step + 2
    assert state["log_history"][0]["step"] == 1 and state["log_history"][-1]["step"] == step + 2
    final = torch.load(killed / f"checkpoint-{step + 2}" / STATE_FILE, weights_only=True)
    assert final["ema"]["optimization_step"] == step + 2

    straight = tmp_path / "straight"
    main(["--output_dir", str(straight), "--max_train_steps", str(step + 2), *RESUME_ARGS])
    resumed_weights, straight_weights = final_weights(killed), final_weights(straight)
    for name, value in straight_weights.items():  # EMA weights: the same only if EMA, RNG, data order all resumed
        torch.testing.assert_close(resumed_weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
    reference = torch.load(straight / f"checkpoint-{step + 2}" / STATE_FILE, weights_only=True)
    assert final["data"] == reference["data"]


# --- multi-process -------------------------------------------------------------------------------------------------


def test_two_process_cpu_run_writes_exactly_one_output(tmp_path):
    # accelerate 1.15: `launch --cpu` starts ONE process; two gloo CPU processes need the multi-process
    # launcher plus ACCELERATE_USE_CPU=1
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(TRAIN_SCRIPT),
               "--output_dir", str(out), "--max_train_steps", "2", "--checkpointing_steps", "2", "--no-save_gif", *TINY]
    env = {**os.environ, **QUIET_OMP, "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    files = files_under(out)
    assert files.count("model_index.json") == 1 and files.count("README.md") == 1
    assert {"checkpoint-2/random_states_0.pkl", "checkpoint-2/random_states_1.pkl"} <= set(files)
    assert not [f for f in files if f.startswith(".") or "/." in f or f.endswith(".tmp")]
    assert sorted(f for f in files if f.startswith("samples")) == ["samples.png"]
    state = torch.load(out / "checkpoint-2" / STATE_FILE, weights_only=True)
    assert state["global_step"] == 2 and state["data"]["position"] == 2  # both processes stepped through one shard each


# --- bad input -----------------------------------------------------------------------------------------------------


def _csv_without_images(tmp_path) -> Path:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n3,4\n")
    return folder


def _unlabelled_arrays(tmp_path) -> Path:
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    np.save(folder / "sprites_16_8x8.npy", np.zeros((16, 8, 8, 3), np.uint8))
    return folder


def _negative_labels(tmp_path) -> Path:
    folder = tmp_path / "neg"
    folder.mkdir()
    np.save(folder / "sprites_16_8x8.npy", np.zeros((16, 8, 8, 3), np.uint8))
    np.save(folder / "sprite_labels_16_8x8.npy", np.array([0, 1, -1, 0] * 4))
    return folder


def _mixed_label_vectors(tmp_path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    np.save(folder / "sprites_16_8x8.npy", np.zeros((16, 8, 8, 3), np.uint8))
    np.save(folder / "sprite_labels_nc_16_8x8.npy", np.tile(np.float32([[1, 0], [0.5, 0.5]]), (8, 1)))
    return folder


def _broken_image(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "broken"
    (folder / "a").mkdir(parents=True)
    for index in range(12):
        Image.new("RGB", (8, 8), "red").save(folder / "a" / f"{index}.png")
    (folder / "a" / "zz.png").write_bytes(b"this is not a png")
    return folder


BAD_INPUTS = {
    "unknown dataset": (lambda tmp: ["--train_data_dir", str(tmp / "missing")], "does not exist"),
    "no image column": (lambda tmp: ["--train_data_dir", str(_csv_without_images(tmp))], "image"),
    "labels required": (lambda tmp: ["--preset", "sprites_context", "--train_data_dir", str(_unlabelled_arrays(tmp))],
                        "--class_column"),
    "labels out of range": (lambda tmp: ["--train_data_dir", str(_negative_labels(tmp))], "negative"),
    "unreadable image": (lambda tmp: ["--train_data_dir", str(_broken_image(tmp)), "--train_batch_size", "4"],
                         "cannot be read"),
    "resolution": (lambda tmp: ["--resolution", "18"], "multiple of 4"),
    "unet2d resolution": (lambda tmp: ["--model", "unet2d", "--resolution", "20"], "multiple of 32"),
    "push without token": (lambda tmp: ["--push_to_hub", "--hub_model_id", "me/model"], "token"),
    "bad repo id": (lambda tmp: ["--push_to_hub", "--hub_model_id", "not a/valid//id", "--hub_token", FAKE_TOKEN],
                    "repo id"),
    "cond drop without labels": (lambda tmp: ["--no-conditional", "--cond_drop_prob", "0.1"], "--cond_drop_prob"),
    "balance without one class per image": (
        lambda tmp: ["--preset", "sprites_context", "--train_data_dir", str(_mixed_label_vectors(tmp)),
                     "--balance_classes", "--train_batch_size", "4"], "one class per image"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_up_front_and_writes_nothing(case, tmp_path, monkeypatch, hf_offline):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no cached login
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.setattr("hf_sprites.hub.push.get_token", lambda: None)
    make_args, expected = BAD_INPUTS[case]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=expected):
        main(["--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), *make_args(tmp_path)])
    assert not out.exists()


def test_non_empty_output_dir_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        main(["--output_dir", str(out), *TINY])
    assert os.listdir(out) == ["keep.txt"]


# --- secrets -------------------------------------------------------------------------------------------------------


def test_push_uploads_a_loadable_folder_and_the_token_is_written_nowhere(sprite_arrays, tmp_path, monkeypatch):
    from hf_sprites.hub import load_pipeline

    capture = tmp_path / "uploaded"
    apis = []

    def recording_api(token=None):
        assert token == FAKE_TOKEN
        apis.append(RecordingHfApi(token=token, capture_dir=capture))
        return apis[-1]

    monkeypatch.setattr("hf_sprites.hub.push.HfApi", recording_api)
    out = tmp_path / "pushed"
    main(["--preset", "sprites", "--train_data_dir", str(sprite_arrays), "--output_dir", str(out), "--max_train_steps",
          "2", "--push_to_hub", "--hub_model_id", "me/tiny-sprites", "--hub_token", FAKE_TOKEN,
          "--checkpointing_steps", "2", *TINY, "--logger", "tensorboard"])
    assert [name for name, _ in apis[0].calls] == ["create_repo", "upload_folder"]
    uploaded = load_pipeline(capture)
    assert type(uploaded).__name__ == "DDPMPipeline" and uploaded.unet.config.sample_size == 8
    for folder in (out, capture):
        for path in folder.rglob("*"):
            if path.is_file():
                assert FAKE_TOKEN.encode() not in path.read_bytes(), f"token written to {path}"


@pytest.mark.parametrize("flags, expected", [
    (["--torch_compile"], {}),  # torch's own default mode
    (["--torch_compile", "--torch_compile_mode", "reduce-overhead"], {"mode": "reduce-overhead"}),
])
def test_the_compile_mode_flag_reaches_torch_compile(monkeypatch, flags, expected):
    from hf_sprites.training.builders import build_model_for_run

    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: calls.append(kwargs))
    build_model_for_run(parse_train_args(["--preset", "sprites_context_fast", "--n_feat", "8", *flags]), 3, 5)
    assert calls == [expected]
