"""The two layouts: package module paths for local folders, remote code for what is pushed.

The loading checks run in fresh interpreters from a folder outside the repository, offline, with a Hub cache laid out
as huggingface_hub writes it. One interpreter has hf_sprites hidden from the import system (as if not installed);
the other has it installed. Each interpreter runs several checks and reports them as JSON, which the tests read.
"""

import importlib.util
import inspect
import json
import shutil
import sys

import pytest

from diffusers import DDPMPipeline

from hf_sprites import BasicUNet, ContextUnet, CorruptScheduler, SpritePipeline, SpriteScheduler
from hf_sprites.hub import push_folder, write_remote_code_layout
from hf_sprites.hub.remote_code import PACKAGE_CLASS_MODULES, module_source, package_class
from hub_helpers import RecordingHfApi, place_in_hub_cache, run_python, save_tiny_pipelines

TOKEN = "hf_TestTokenForRemoteCodeChecks000000"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Package-layout folders, what `push_folder` would upload for them, and a Hub cache holding both layouts."""
    root = tmp_path_factory.mktemp("layouts")
    paths = {k: str(v) for k, v in save_tiny_pipelines(root).items()}
    DDPMPipeline(unet=BasicUNet(sample_size=8), scheduler=CorruptScheduler()).save_pretrained(root / "corrupt")
    paths["corrupt"] = str(root / "corrupt")
    for name in ("cond", "unc", "corrupt"):
        upload = root / f"{name}_upload"
        push_folder(paths[name], f"user/{name}", token=TOKEN, api=RecordingHfApi(capture_dir=upload))
        paths[f"{name}_upload"] = str(upload)
    cache = root / "hub_cache"
    place_in_hub_cache(root / "cond_upload", cache, "user/cond")
    place_in_hub_cache(root / "unc_upload", cache, "user/unc")
    place_in_hub_cache(root / "unc", cache, "user/unc-package")
    place_in_hub_cache(root / "unc", cache, "user/unc-package-nolisting", with_tree=False)
    paths.update(cache=str(cache), root=str(root))
    paths.update(resaved_unc=str(root / "resaved_unc"), resaved_cond=str(root / "resaved_cond"))
    return paths


def interpreter_env(layouts) -> dict:
    root = layouts["root"]
    return {
        "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": layouts["cache"], "HF_HOME": f"{root}/hf_home",
        "HF_MODULES_CACHE": f"{root}/hf_modules", "OMP_NUM_THREADS": "1", "LAYOUTS": json.dumps(layouts),
    }  # fmt: skip


PRELUDE = """
import json, os, re, sys
import torch
from diffusers import DDPMPipeline, DiffusionPipeline
from huggingface_hub import snapshot_download

paths = json.loads(os.environ["LAYOUTS"])
out = {}

def modules(pipe):
    return [type(pipe).__module__, type(pipe.unet).__module__, type(pipe.scheduler).__module__]

def shape(pipe, **kwargs):
    images = pipe(num_inference_steps=3, output_type="np", generator=torch.manual_seed(0), **kwargs).images
    return list(images.shape)

def error(call):
    try:
        call()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None
"""

WITHOUT_PACKAGE = PRELUDE + """
out["hf_sprites_importable"] = error(lambda: __import__("hf_sprites")) is None

cond = DiffusionPipeline.from_pretrained(paths["cond_upload"], trust_remote_code=True)
out["cond_modules"], out["cond_shape"] = modules(cond), shape(cond, class_labels=[0, 1, 2])
unc = DDPMPipeline.from_pretrained(paths["unc_upload"], trust_remote_code=True)
out["unc_modules"], out["unc_shape"] = modules(unc), shape(unc, batch_size=2)
generic = DiffusionPipeline.from_pretrained(paths["unc_upload"], trust_remote_code=True)
out["unc_via_diffusion_pipeline"] = type(generic).__name__
corrupt = DDPMPipeline.from_pretrained(paths["corrupt_upload"], trust_remote_code=True)
out["corrupt_modules"], out["corrupt_shape"] = modules(corrupt), shape(corrupt, batch_size=2)
out["without_trust"] = error(lambda: DDPMPipeline.from_pretrained(paths["unc_upload"]))

cached = DDPMPipeline.from_pretrained("user/unc", trust_remote_code=True)
out["cached_unc_modules"], out["cached_unc_shape"] = modules(cached), shape(cached, batch_size=2)
out["cached_cond_by_repo_id"] = error(lambda: DiffusionPipeline.from_pretrained("user/cond", trust_remote_code=True))
snapshot = DiffusionPipeline.from_pretrained(snapshot_download("user/cond"), trust_remote_code=True)
out["cached_cond_snapshot_shape"] = shape(snapshot, class_labels=[2])
out["package_layout_from_hub"] = error(lambda: DDPMPipeline.from_pretrained("user/unc-package"))

card = open(os.path.join(snapshot_download("user/unc"), "README.md")).read()
exec(re.findall(r"```python\\n(.*?)```", card, flags=re.S)[0], {})
out["card_snippet_wrote"] = os.path.isfile("sample.png")

unc.save_pretrained(paths["resaved_unc"])
cond.save_pretrained(paths["resaved_cond"])
out["resaved_index"] = json.load(open(os.path.join(paths["resaved_cond"], "model_index.json")))
out["resaved_py_files"] = [f for _, _, files in os.walk(paths["resaved_cond"]) for f in files if f.endswith(".py")]
print(json.dumps(out))
"""

WITH_PACKAGE = PRELUDE + """
import shutil
import hf_sprites
from hf_sprites.hub import load_pipeline, write_remote_code_layout

pipe = load_pipeline("user/cond")
out["load_pipeline_modules"], out["load_pipeline_shape"] = modules(pipe), shape(pipe, class_labels=[0, 1])
out["remote_code_ran"] = any(name.startswith("diffusers_modules") for name in sys.modules)

out["local_unc_modules"] = modules(DDPMPipeline.from_pretrained(paths["unc"]))
out["local_cond_modules"] = modules(hf_sprites.SpritePipeline.from_pretrained(paths["cond"]))
out["package_layout_from_hub"] = error(lambda: DDPMPipeline.from_pretrained("user/unc-package"))
out["package_layout_without_listing"] = modules(DDPMPipeline.from_pretrained("user/unc-package-nolisting"))
out["resaved_elsewhere"] = error(lambda: DDPMPipeline.from_pretrained(paths["resaved_unc"]))
out["resaved_with_load_pipeline"] = modules(load_pipeline(paths["resaved_cond"]))

fixed = paths["resaved_cond"] + "_fixed"
shutil.copytree(paths["resaved_cond"], fixed)
write_remote_code_layout(fixed)
out["fixed_shape"] = shape(DiffusionPipeline.from_pretrained(fixed, trust_remote_code=True), class_labels=[1])

remote = DDPMPipeline.from_pretrained("user/unc", trust_remote_code=True)
out["remote_wins_modules"] = modules(remote)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_package(layouts, tmp_path_factory):
    return run_python(WITHOUT_PACKAGE, tmp_path_factory.mktemp("cwd_a"), interpreter_env(layouts), hide_hf_sprites=True)


@pytest.fixture(scope="module")
def with_package(layouts, without_package, tmp_path_factory):  # uses the folders the first interpreter re-saved
    return run_python(WITH_PACKAGE, tmp_path_factory.mktemp("cwd_b"), interpreter_env(layouts))


REMOTE = "diffusers_modules.local"


# --- without hf_sprites -----------------------------------------------------------------------------------------
def test_pushed_folders_load_and_sample_without_the_package(without_package):
    out = without_package
    assert out["hf_sprites_importable"] is False
    assert all(m.startswith(REMOTE) for m in out["cond_modules"]) and out["cond_shape"] == [3, 16, 16, 3]
    assert out["unc_modules"][0] == "diffusers.pipelines.ddpm.pipeline_ddpm"
    assert all(m.startswith(REMOTE) for m in out["unc_modules"][1:]) and out["unc_shape"] == [2, 16, 16, 3]
    assert out["unc_via_diffusion_pipeline"] == "DDPMPipeline"
    assert out["corrupt_modules"][1:] == [f"{REMOTE}.basic_unet", f"{REMOTE}.corrupt"] and out["corrupt_shape"] == [2, 8, 8, 1]
    assert "trust_remote_code=True" in out["without_trust"]


def test_unconditional_repo_loads_from_the_offline_cache_by_repo_id(without_package):
    assert all(m.startswith(REMOTE) for m in without_package["cached_unc_modules"][1:])
    assert without_package["cached_unc_shape"] == [2, 16, 16, 3]
    assert without_package["card_snippet_wrote"] is True  # the pushed card's snippet, verbatim


def test_conditional_repo_offline_needs_the_snapshot_path(without_package):
    # diffusers 0.42.1 asks the Hub for the commit of a repo's custom pipeline file even when offline ...
    assert without_package["cached_cond_by_repo_id"].startswith("OfflineModeIsEnabled")
    # ... so offline, pass the cached snapshot folder (or use hf_sprites.hub.load_pipeline).
    assert without_package["cached_cond_snapshot_shape"] == [1, 16, 16, 3]


def test_package_module_names_are_rejected_from_a_hub_repo(without_package, with_package):
    for out in (without_package, with_package):
        message = out["package_layout_from_hub"]
        assert message.startswith("ValueError") and "hf_sprites.schedulers.sprite.py" in message
        assert "does not exist in user/unc-package" in message


def test_resaving_a_remote_loaded_pipeline_drops_the_code(without_package, with_package):
    index = without_package["resaved_index"]
    assert index["unet"][0].startswith(REMOTE) and index["scheduler"][0].startswith(REMOTE)
    assert without_package["resaved_py_files"] == []
    assert "diffusers_modules.local" in with_package["resaved_elsewhere"]
    assert with_package["resaved_with_load_pipeline"][1] == "hf_sprites.models.context_unet"
    assert with_package["fixed_shape"] == [1, 16, 16, 3]  # write_remote_code_layout repairs such a folder


# --- with hf_sprites ------------------------------------------------------------------------------------------------
def test_with_the_package_local_folders_load_without_remote_code(with_package):
    assert with_package["local_unc_modules"] == [
        "diffusers.pipelines.ddpm.pipeline_ddpm", "hf_sprites.models.context_unet", "hf_sprites.schedulers.sprite",
    ]  # fmt: skip
    assert with_package["local_cond_modules"][0] == "hf_sprites.pipelines.sprite_pipeline"
    # A package-layout repo loads from the cache only while no file listing is cached for it.
    assert with_package["package_layout_without_listing"][1] == "hf_sprites.models.context_unet"


def test_load_pipeline_reads_a_pushed_repo_with_package_classes_offline(with_package):
    assert with_package["load_pipeline_modules"] == [
        "hf_sprites.pipelines.sprite_pipeline", "hf_sprites.models.context_unet", "hf_sprites.schedulers.sprite",
    ]  # fmt: skip
    assert with_package["load_pipeline_shape"] == [2, 16, 16, 3] and with_package["remote_code_ran"] is False


def test_remote_code_wins_over_the_installed_package(with_package):
    assert all(m.startswith(REMOTE) for m in with_package["remote_wins_modules"][1:])


# --- the layout itself ------------------------------------------------------------------------------------------
def test_layout_names_copied_module_files_and_is_idempotent(layouts, tmp_path):
    folder = shutil.copytree(layouts["cond"], tmp_path / "cond")
    index = write_remote_code_layout(folder)
    assert index["_class_name"] == ["sprite_pipeline", "SpritePipeline"]
    assert index["unet"] == ["context_unet", "ContextUnet"] and index["scheduler"] == ["sprite", "SpriteScheduler"]
    for cls, copied in ((ContextUnet, "unet/context_unet.py"), (SpriteScheduler, "scheduler/sprite.py"),
                        (SpritePipeline, "sprite_pipeline.py")):  # fmt: skip
        assert (folder / copied).read_text() == open(inspect.getsourcefile(cls)).read()
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert write_remote_code_layout(folder) == index
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files


def test_stock_diffusers_pipelines_stay_as_they_are(tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))  # fmt: skip
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path)
    before = json.loads((tmp_path / "model_index.json").read_text())
    assert write_remote_code_layout(tmp_path) == before and not list(tmp_path.rglob("*.py"))


def test_unknown_classes_and_package_imports_are_refused(layouts, tmp_path, monkeypatch):
    folder = shutil.copytree(layouts["unc"], tmp_path / "unc")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "unet": ["my_package.models", "MyUNet"]}))
    with pytest.raises(ValueError, match=r"models.MyUNet\) is neither a diffusers class nor one of hf_sprites' classes"):
        write_remote_code_layout(folder)

    module_file = tmp_path / "leaky_model.py"
    module_file.write_text("from hf_sprites.models import ContextUnet\n\nclass Leaky(ContextUnet):\n    pass\n")
    spec = importlib.util.spec_from_file_location("leaky_model", module_file)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "leaky_model", module)
    spec.loader.exec_module(module)
    with pytest.raises(RuntimeError, match="cannot travel as a single remote-code file"):
        module_source(module.Leaky)


def test_the_class_table_names_every_model_scheduler_and_pipeline_the_package_exports():
    import diffusers

    import hf_sprites

    bases = (diffusers.ModelMixin, diffusers.SchedulerMixin, diffusers.DiffusionPipeline)
    exported = {name for name, obj in vars(hf_sprites).items()
                if inspect.isclass(obj) and obj.__module__.startswith("hf_sprites.") and issubclass(obj, bases)}  # fmt: skip
    assert exported == set(PACKAGE_CLASS_MODULES)
    for name, module in PACKAGE_CLASS_MODULES.items():
        assert package_class(name) is getattr(hf_sprites, name) and package_class(name).__module__ == module
