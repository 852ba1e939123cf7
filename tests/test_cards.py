"""Model cards on Hub conventions (issue 9, and issue 11 item 6): the snippet matches the folder and runs offline,
license / widget / model-index metadata, the record in training_config.json, and no local path in anything shared."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import hf_sprites.hub.push as push_module
from conftest import require_shared
from hf_sprites.cli import main as cli_main
from hf_sprites.hub import push_folder
from hf_sprites.training import main as train
from hub_helpers import RecordingHfApi, place_in_hub_cache, run_python

TOKEN = "hf_TestTokenForTheCardTests0000000000"
QUICK = ["--max_train_steps", "2", "--train_batch_size", "8", "--max_train_samples", "32", "--eval_batch_size", "2",
         "--ddpm_num_inference_steps", "2", "--logger", "none", "--seed", "0", "--checkpointing_steps", "100",
         "--no-save_gif"]
STOCK = ["--model", "unet2d", "--no-conditional", "--ddpm_beta_schedule", "linear", "--ddpm_num_steps", "20",
         "--block_out_channels", "32", "32", "--down_block_types", "DownBlock2D", "DownBlock2D", "--up_block_types",
         "UpBlock2D", "UpBlock2D", "--layers_per_block", "1", "--license", "mit"]
CONTEXT = ["--preset", "sprites", "--n_feat", "8", "--ddpm_num_steps", "30"]  # unconditional ContextUnet

pytestmark = pytest.mark.usefixtures("one_thread")


def first_snippet(readme: Path) -> str:
    return re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)[0]


def pushed(folder: Path, repo_id: str, capture: Path, monkeypatch, **kwargs) -> Path:
    """What `push_folder` would upload for `folder` (HfApi replaced by a recorder)."""
    monkeypatch.setattr(push_module, "HfApi", lambda token=None: RecordingHfApi(token, capture))
    push_folder(folder, repo_id, token=TOKEN, **kwargs)
    return capture


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A stock UNet2DModel + DDPMScheduler folder (embedded digits) and a ContextUnet folder (local crawl-sprites)."""
    root = tmp_path_factory.mktemp("cards")
    data = require_shared("data/crawl-sprites")
    train([*QUICK, *STOCK, "--output_dir", str(root / "stock")])
    train([*QUICK, *CONTEXT, "--train_data_dir", str(data), "--output_dir", str(root / "context")])
    return {"root": root, "data": data, "stock": root / "stock", "context": root / "context"}


def test_a_stock_folder_gets_plain_diffusers_snippets_that_run_offline_without_hf_sprites(runs, tmp_path, monkeypatch):
    stock = runs["stock"]
    local = ModelCard.load(stock / "README.md")
    assert json.loads((stock / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DModel"]
    snippet = first_snippet(stock / "README.md")
    assert "hf_sprites" not in snippet and "trust_remote_code" not in snippet
    assert f'DDPMPipeline.from_pretrained("{stock.resolve().as_posix()}")' in snippet
    assert local.data.license == "mit" and local.data.widget == [
        {"text": "unconditional samples", "output": {"url": "samples.png"}}]
    upload = pushed(stock, "user/stock", tmp_path / "stock_upload", monkeypatch)
    remote = ModelCard.load(upload / "README.md")
    assert not list(upload.rglob("*.py")) and "trust_remote_code" not in remote.text
    assert "load_pipeline" not in remote.text and 'DDPMPipeline.from_pretrained("user/stock")' in remote.text
    cache = tmp_path / "hub_cache"
    place_in_hub_cache(upload, cache, "user/stock")
    code = ("import json, os\n"
            f"exec(open({str(upload / 'README.md')!r}).read().split('```python\\n')[1].split('```')[0], {{}})\n"
            "os.rename('sample.png', 'remote.png')\n"
            f"exec({snippet!r}, {{}})\n"
            "print(json.dumps(sorted(f for f in os.listdir('.') if f.endswith('.png'))))")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf_home"),
           "OMP_NUM_THREADS": "1"}
    assert run_python(code, tmp_path, env, hide_hf_sprites=True) == ["remote.png", "sample.png"]


def test_a_context_unet_folder_imports_the_package_locally_and_uses_remote_code_on_the_hub(runs, tmp_path,
                                                                                            monkeypatch):
    context = runs["context"]
    snippet = first_snippet(context / "README.md")
    assert "import hf_sprites" in snippet and "trust_remote_code" not in snippet
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    assert (tmp_path / "sample.png").is_file()
    upload = pushed(context, "user/context", tmp_path / "context_upload", monkeypatch, license="cc-by-4.0")
    remote = ModelCard.load(upload / "README.md")
    assert remote.data.license == "cc-by-4.0" and (upload / "unet" / "context_unet.py").is_file()
    assert 'DiffusionPipeline.from_pretrained("user/context", trust_remote_code=True)' in first_snippet(
        upload / "README.md")  # run offline without the package in test_remote_code (card_snippet_wrote)
    assert 'load_pipeline("user/context")' in remote.text


def test_local_paths_reach_neither_the_card_nor_the_record_nor_the_upload(runs, tmp_path, monkeypatch):
    context, data = runs["context"], runs["data"]
    record = json.loads((context / "training_config.json").read_text())
    assert record["dataset_name"] == "local data (crawl-sprites)" and "train_data_dir" not in record["hyperparameters"]
    assert "hf_sprites" not in ModelCard.load(context / "README.md").data.to_dict()  # the record left the front matter
    assert "local data (crawl-sprites)" in (context / "README.md").read_text()
    upload = pushed(context, "user/context", tmp_path / "upload", monkeypatch)
    secrets = {str(data), str(data.resolve()), str(runs["root"]), str(runs["root"].resolve())}
    shared = [context / "README.md", context / "training_config.json", *(p for p in upload.rglob("*") if p.is_file())]
    for path in shared:
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaked = [s for s in secrets if s in text and not (path == context / "README.md" and s in str(context))]
        assert not leaked, f"{path} holds the local path {leaked}"
    assert str(data) not in (context / "README.md").read_text()


def test_an_evaluation_becomes_model_index_results_named_by_its_features(tmp_path, monkeypatch):
    folder = tmp_path / "digits"
    train([*QUICK, "--n_feat", "8", "--output_dir", str(folder)])  # the embedded default: conditional ContextUnet
    monkeypatch.chdir(tmp_path)
    assert cli_main(["evaluate", str(folder), "--num_samples", "40", "--sampler", "ddim", "--num_inference_steps", "2",
                     "--feature_dim", "16", "--classifier_epochs", "1", "--cache_dir", str(tmp_path / "cache"),
                     "--guidance_scale", "2", "--guidance_interval", "0", "0.5", "--update_card"]) == 0
    card = ModelCard.load(folder / "README.md")
    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) == {"fid", "kid", "accuracy"} and card.data.model_name == "digits"
    assert "domain features" in results["fid"].metric_config and "not Inception" in results["fid"].metric_config
    assert results["accuracy"].metric_name == "class accuracy (domain features)"
    recorded = json.loads((folder / "training_config.json").read_text())["evaluation"]
    assert recorded["fid"] == pytest.approx(results["fid"].metric_value, rel=1e-5) and recorded["features"] == "domain"
    assert recorded["fid_labels"] == "reference"  # which classes the FID samples asked for
    assert (recorded["guidance_scale"], recorded["guidance_interval"]) == (2.0, [0.0, 0.5])  # how they were sampled
    assert "## Evaluation" in card.text and "| class accuracy |" in card.text
    upload = pushed(folder, "user/digits", tmp_path / "upload", monkeypatch)
    assert len(ModelCard.load(upload / "README.md").data.eval_results) == 3  # the scores travel with the push


def test_card_errors_come_before_any_work(tmp_path, monkeypatch, capsys):
    from hub_helpers import save_tiny_pipelines

    bare = save_tiny_pipelines(tmp_path)["cond"]
    assert cli_main(["evaluate", str(bare), "--update_card"]) == 1
    assert "is not a folder with an hf_sprites model card" in capsys.readouterr().err and not (bare / "README.md").exists()
    monkeypatch.setattr(push_module, "HfApi", lambda token=None: pytest.fail("nothing may reach the Hub"))
    with pytest.raises(ValueError, match="not a Hub license id"):
        push_folder(bare, "user/x", token=TOKEN, license="Apache 2.0")
    with pytest.raises(ValueError, match="--license 'MIT License' is not a Hub license id"):
        train([*QUICK, "--license", "MIT License", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_an_older_card_with_its_record_in_the_front_matter_still_refreshes(runs, tmp_path):
    from hf_sprites.hub import refresh_model_card

    folder = Path(shutil.copytree(runs["stock"], tmp_path / "old"))
    record = json.loads((folder / "training_config.json").read_text())
    (folder / "training_config.json").unlink()
    card = ModelCard.load(folder / "README.md")
    card.data.hf_sprites = record  # how cards kept the record before issue 9
    card.save(folder / "README.md")
    refresh_model_card(folder, repo_id="user/old")
    assert json.loads((folder / "training_config.json").read_text()) == record
    assert "hf_sprites" not in ModelCard.load(folder / "README.md").data.to_dict()
