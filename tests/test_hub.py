"""Model cards, the Hub token, pushing (HfApi replaced by a recorder) and loading with hf_sprites' own classes."""

import json
import logging
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

import hf_sprites.hub.push as push_module
from hf_sprites import SpritePipeline
from hf_sprites.hub import load_pipeline, push_folder, refresh_model_card, resolve_token, write_model_card
from hf_sprites.hub.card import BASE_TAGS, template_path
from hub_helpers import RecordingHfApi, save_tiny_pipelines

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_TestTokenThatMustNeverLeak0123456789"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_tiny_pipelines(tmp_path_factory.mktemp("hub"))


@pytest.fixture
def cond(folders, tmp_path):
    """A private copy of the conditional folder, so a test may change it."""
    import shutil

    return Path(shutil.copytree(folders["cond"], tmp_path / "cond"))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and do not fight the other tests for the 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


# --- model card ----------------------------------------------------------------------------------------------------
def test_card_metadata_hyperparameters_classes_and_image(cond):
    hyper = {"learning_rate": 1e-3, "betas": (0.9, 0.999), "output_dir": Path("/x/out"), "hub_token": TOKEN,
             "note": f"pushed with {TOKEN}", "train_batch_size": 100}  # fmt: skip
    path = write_model_card(cond, dataset_name="someone/sprites", hyperparameters=hyper, sample_image="samples.png",
                            conditional=True, class_names=["hero", "food", "spell"])  # fmt: skip
    card = ModelCard.load(path)
    assert card.data.library_name == "diffusers" and card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert set(BASE_TAGS) | {"class-conditional"} <= set(card.data.tags)
    assert card.data.datasets == ["someone/sprites"]
    assert "| `learning_rate` | `0.001` |" in card.text and "| `betas` | `[0.9, 0.999]` |" in card.text
    assert "| `train_batch_size` | `100` |" in card.text and "| 2 | spell |" in card.text
    assert "![Samples from this model](samples.png)" in card.text
    assert "hub_token" not in path.read_text() and TOKEN not in path.read_text()


def test_local_card_snippet_runs_as_written(cond, tmp_path, monkeypatch, one_thread):
    write_model_card(cond, conditional=True, hyperparameters={"seed": 0})
    (snippet,) = python_blocks((cond / "README.md").read_text())
    assert f'SpritePipeline.from_pretrained("{cond.resolve().as_posix()}")' in snippet
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})  # the full 500-step chain of a tiny model
    assert (tmp_path / "sample.png").is_file()


def test_unconditional_card_uses_ddpm_pipeline_and_a_local_dataset_is_not_metadata(folders, tmp_path):
    import shutil

    unc = Path(shutil.copytree(folders["unc"], tmp_path / "unc"))
    path = write_model_card(unc, dataset_name=str(tmp_path), local_path="/models/final")
    card = ModelCard.load(path)
    assert card.data.datasets is None and "class-conditional" not in card.data.tags
    assert "import hf_sprites" in card.text and 'DDPMPipeline.from_pretrained("/models/final")' in card.text
    assert "# final" in card.text and "not recorded" in card.text


def test_sample_image_from_elsewhere_is_copied_in(cond, tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "grid.png")
    write_model_card(cond, sample_image=tmp_path / "grid.png")
    assert (cond / "grid.png").is_file() and "](grid.png)" in (cond / "README.md").read_text()


def test_card_errors_are_clear(cond, folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        write_model_card(tmp_path)
    with pytest.raises(ValueError, match="DDPMPipeline, which takes no class labels"):
        write_model_card(folders["unc"], conditional=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_model_card(cond, sample_image="missing.png")
    assert not (tmp_path / "README.md").exists() and not (folders["unc"] / "README.md").exists()


def test_refresh_renders_for_the_repo_and_keeps_the_inputs(cond):
    write_model_card(cond, hyperparameters={"learning_rate": 0.002}, conditional=True, class_names=["a", "b", "c"])
    refresh_model_card(cond, repo_id="someone/tiny-sprites")
    text = (cond / "README.md").read_text()
    assert "| `learning_rate` | `0.002` |" in text and "| 1 | b |" in text
    assert 'DiffusionPipeline.from_pretrained("someone/tiny-sprites", trust_remote_code=True)' in text
    assert 'load_pipeline("someone/tiny-sprites")' in text and "`sprite_pipeline.py`" in text


def test_a_foreign_readme_is_left_alone(cond):
    (cond / "README.md").write_text("# my own card\n")
    refresh_model_card(cond, repo_id="someone/x")
    assert (cond / "README.md").read_text() == "# my own card\n"


def test_template_is_the_top_level_file_and_ships_in_the_wheel(tmp_path):
    assert template_path().read_text() == (REPO_ROOT / "model_card_template.md").read_text()
    assert "{{ card_data }}" in template_path().read_text()
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("hf_sprites-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("hf_sprites/templates/model_card_template.md").decode()
    assert shipped == (REPO_ROOT / "model_card_template.md").read_text()


# --- token -----------------------------------------------------------------------------------------------------------
def test_token_comes_from_flag_then_env_then_cached_login(monkeypatch, tmp_path):
    import huggingface_hub.constants

    login_file = tmp_path / "token"
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(login_file))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(ValueError, match="HF_TOKEN.*hf auth login"):
        resolve_token(None)
    login_file.write_text("hf_from_login\n")
    assert resolve_token(None) == "hf_from_login"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert resolve_token(None) == "hf_from_env"
    assert resolve_token("hf_from_flag") == "hf_from_flag"


# --- push --------------------------------------------------------------------------------------------------------
@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """Replace HfApi in the push module; the uploaded tree is copied to tmp_path/uploaded."""
    RecordingHfApi.instances.clear()
    monkeypatch.setattr(push_module, "HfApi", lambda token=None: RecordingHfApi(token, tmp_path / "uploaded"))
    return tmp_path / "uploaded"


def test_push_uploads_the_remote_code_layout_that_loads(cond, recorder, caplog, capsys):
    (cond / "checkpoint-20").mkdir()
    (cond / "checkpoint-20" / "optimizer.bin").write_bytes(b"state")
    write_model_card(cond, hyperparameters={"hub_token": TOKEN, "learning_rate": 0.001}, conditional=True)
    before = {p: p.read_bytes() for p in cond.rglob("*") if p.is_file()}
    with caplog.at_level(logging.DEBUG):
        commit = push_folder(cond, "someone/tiny-sprites", token=TOKEN, private=True, revision="dev", commit_message="v1")

    (api,) = RecordingHfApi.instances
    assert api.token == TOKEN and commit.commit_url.startswith("https://huggingface.co/someone/tiny-sprites")
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == {"repo_id": "someone/tiny-sprites", "repo_type": "model", "private": True, "exist_ok": True}
    assert api.calls[1][1]["branch"] == "dev"
    upload = api.calls[2][1]
    assert (upload["revision"], upload["commit_message"], upload["repo_id"]) == ("dev", "v1", "someone/tiny-sprites")

    index = json.loads((recorder / "model_index.json").read_text())
    assert index["_class_name"] == ["sprite_pipeline", "SpritePipeline"] and index["unet"] == ["context_unet", "ContextUnet"]
    assert (recorder / "unet" / "context_unet.py").is_file() and (recorder / "sprite_pipeline.py").is_file()
    assert not (recorder / "checkpoint-20").exists()
    assert 'from_pretrained("someone/tiny-sprites", trust_remote_code=True)' in (recorder / "README.md").read_text()
    for path in recorder.rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in caplog.text and TOKEN not in "".join(capsys.readouterr())
    assert {p: p.read_bytes() for p in cond.rglob("*") if p.is_file()} == before  # the folder itself is unchanged

    pipe = load_pipeline(recorder)
    assert isinstance(pipe, SpritePipeline)
    images = pipe(class_labels=[0, 2], num_inference_steps=2, output_type="pt").images
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_push_without_revision_goes_to_main_without_a_branch(folders, recorder):
    push_folder(folders["unc"], "tiny-unc", token=TOKEN)  # a bare name: the card must name the full repo id
    (api,) = RecordingHfApi.instances
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1]["private"] is False and api.calls[1][1]["revision"] is None
    assert api.calls[1][1]["commit_message"] == "Upload DDPMPipeline with hf_sprites"
    assert json.loads((recorder / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert 'DDPMPipeline.from_pretrained("someone/tiny-unc", trust_remote_code=True)' in (recorder / "README.md").read_text()


def test_push_errors_come_before_anything_is_created(cond, recorder, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="not a valid Hub repo id.*username/model-name"):
        push_folder(cond, "not a repo", token=TOKEN)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(push_module, "get_token", lambda: None)
    with pytest.raises(ValueError, match="No Hugging Face token"):
        push_folder(cond, "someone/x")
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        push_folder(tmp_path, "someone/x", token=TOKEN)
    (cond / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="does not load as a pipeline") as err:
        push_folder(cond, "someone/x", token=TOKEN)
    assert TOKEN not in str(err.value)
    assert all(not api.calls for api in RecordingHfApi.instances)


def test_push_refuses_a_folder_that_contains_the_token(cond, recorder):
    (cond / "notes.txt").write_text(f"my token is {TOKEN}\n")
    with pytest.raises(RuntimeError, match="notes.txt contains your Hub token") as err:
        push_folder(cond, "someone/x", token=TOKEN)
    assert TOKEN not in str(err.value) and not RecordingHfApi.instances[0].calls


# --- loading with package classes -------------------------------------------------------------------------------
def test_load_pipeline_reads_both_layouts_with_package_classes(folders, recorder):
    from diffusers import DDPMPipeline

    from hf_sprites import ContextUnet, SpriteScheduler

    push_folder(folders["unc"], "someone/tiny-unc", token=TOKEN)
    for folder in (folders["unc"], recorder):
        pipe = load_pipeline(folder)
        assert type(pipe) is DDPMPipeline and type(pipe.unet) is ContextUnet and type(pipe.scheduler) is SpriteScheduler


def test_load_pipeline_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        load_pipeline(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a pipeline folder nor a Hub repo id"):
        load_pipeline("./missing/folder")
