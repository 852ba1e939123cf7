"""`hf-sprites`: help texts with examples, sampling grids and GIFs, push/convert wiring, one-line errors."""

import shutil
import subprocess

import pytest
import torch
from PIL import Image

import hf_sprites.hub.push as push_module
from hf_sprites import cli
from hub_helpers import RecordingHfApi, save_tiny_pipelines


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_tiny_pipelines(tmp_path_factory.mktemp("cli"))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["sample", "push", "convert-course-checkpoint"])
def test_each_help_shows_an_example(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and f"example:\n  hf-sprites {command} " in out


def test_top_level_help_lists_every_command_with_examples(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("train", "sample", "evaluate", "push", "convert-course-checkpoint"):
        assert f"  hf-sprites {command} " in out


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_hand_their_flags_over(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert ("--output_dir" if command == "train" else "--num_samples") in out


def test_sample_writes_a_seeded_grid(folders, tmp_path, capsys):
    argv = ["sample", folders["cond"], "--class_label", 0, 1, 2, "--num_inference_steps", 3, "--scale", 2, "--seed", 7]
    assert run([*argv, "--output", tmp_path / "a.png"], capsys)[0] == 0
    assert run([*argv, "--output", tmp_path / "b.png"], capsys)[0] == 0
    assert run([*argv[:-1], 8, "--output", tmp_path / "c.png"], capsys)[0] == 0
    a, b, c = (Image.open(tmp_path / f"{n}.png") for n in "abc")
    assert a.size == (2 * (32 + 1) + 1, 2 * (32 + 1) + 1)  # 3 images of 16 px x2 on a 2x2 grid, 1 px gaps
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_sample_swaps_the_scheduler(folders, tmp_path, scheduler, capsys):
    out = tmp_path / "grid.png"
    code, printed, _ = run(["sample", folders["unc"], "--scheduler", scheduler, "--num_inference_steps", 4,
                            "--batch_size", 3, "--nrow", 3, "--output", out], capsys)  # fmt: skip
    assert code == 0 and printed.strip() == str(out) and Image.open(out).size == (3 * 17 + 1, 18)


def test_sample_gif_shows_the_denoising_with_context_and_guidance(folders, tmp_path, capsys):
    out = tmp_path / "denoise.gif"
    code, _, err = run(["sample", folders["cond"], "--context", "1,0,0.5", "0,1,0", "--guidance_scale", 2,
                        "--num_inference_steps", 5, "--output", out], capsys)  # fmt: skip
    assert code == 0, err
    assert Image.open(out).n_frames == 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "{cond}", "--output", "grid.txt"], "must end in .png"),
        (["sample", "{cond}", "--class_label", "9"], "class label out of range"),
        (["sample", "{cond}", "--context", "1,0"], "`context` must have shape (batch, 3)"),
        (["sample", "{cond}", "--context", "1,x,0"], "--context takes comma-separated numbers"),
        (["sample", "{unc}", "--guidance_scale", "3"], "`guidance_scale` needs `class_labels` or `context`"),
        (["sample", "./no/such/folder"], "neither a pipeline folder nor a Hub repo id"),
        (["push", "{cond}", "bad..name", "--token", "hf_x"], "not a valid Hub repo id"),
        (["convert-course-checkpoint", "{cond}/model_index.json", "{tmp}/out"], "not a PyTorch state dict"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(argv, message, folders, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(cond=folders["cond"], unc=folders["unc"], tmp=tmp_path) for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_unusable_flags_exit_2(capsys):
    code, _, err = run(["sample"], capsys)
    assert code == 2 and "required: model" in err


def test_push_and_convert_commands(folders, tmp_path, capsys, monkeypatch):
    RecordingHfApi.instances.clear()
    monkeypatch.setattr(push_module, "HfApi", lambda token=None: RecordingHfApi(token, tmp_path / "uploaded"))
    code, out, _ = run(["push", folders["unc"], "someone/tiny", "--hub_token", "hf_cli_token", "--private",
                        "--revision", "dev", "--commit_message", "first"], capsys)  # fmt: skip
    assert code == 0 and out.strip() == "https://huggingface.co/someone/tiny/commit/0"
    (api,) = RecordingHfApi.instances
    assert api.token == "hf_cli_token" and api.calls[0][1]["private"] is True
    assert api.calls[-1][1]["revision"] == "dev" and api.calls[-1][1]["commit_message"] == "first"
    assert (tmp_path / "uploaded" / "unet" / "context_unet.py").is_file()


def test_convert_command_writes_a_pipeline(tmp_path, capsys):
    from course_reference import CourseContextUnet

    torch.save(CourseContextUnet(n_feat=8).eval().state_dict(), tmp_path / "model_trained.pth")
    code, out, _ = run(["convert-course-checkpoint", tmp_path / "model_trained.pth", tmp_path / "course"], capsys)
    assert code == 0 and out.strip() == str(tmp_path / "course")
    assert '"_class_name": "DDPMPipeline"' in (tmp_path / "course" / "model_index.json").read_text()
    code, _, err = run(["convert-course-checkpoint", tmp_path / "model_trained.pth", tmp_path / "course"], capsys)
    assert code == 1 and "--overwrite_output_dir" in err


def test_the_console_script_is_installed_and_reports_bad_input(tmp_path):
    executable = shutil.which("hf-sprites")
    assert executable, "the hf-sprites console script is not installed (pip install -e .)"
    result = subprocess.run([executable, "sample", str(tmp_path), "--output", "x.bmp"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 1 and result.stderr.startswith("hf-sprites sample: error: --output")
    assert "Traceback" not in result.stderr
