"""Course checkpoint conversion, checked against an independent re-implementation of the course's ContextUnet."""

from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline
from huggingface_hub import ModelCard

from course_reference import CourseContextUnet, fresh_random_conv
from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
from hf_sprites.course_checkpoint import convert_course_checkpoint

REFERENCE_KEYS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "course_contextunet_state_dict.txt"


def zero_conv(cin: int, cout: int) -> torch.nn.Conv2d:
    conv = torch.nn.Conv2d(cin, cout, 1)
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    return conv


def trained_looking(model: CourseContextUnet, seed: int = 0) -> CourseContextUnet:
    """Random weights and non-trivial BatchNorm statistics, so eval-mode normalisation is exercised."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
            module.num_batches_tracked.fill_(1234)
    return model.eval()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course module (n_feat 16, the course's 5 context features, 16x16) and its saved state dict."""
    torch.manual_seed(0)
    model = trained_looking(CourseContextUnet(in_channels=3, n_feat=16, n_cfeat=5, height=16))
    path = tmp_path_factory.mktemp("course") / "context_model_trained.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def converted(course, tmp_path_factory):
    return convert_course_checkpoint(course[1], tmp_path_factory.mktemp("out") / "converted", context=True)


def inputs(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, 16, 16, generator=generator)
    timesteps = torch.tensor([0, 1, 137, 420, 499])  # scheduler timestep k is the course's t = k + 1
    context = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0.6, 0, 0], [0, 0, 0, 0, 0], [0.2, 0.3, 0, 1, 0]])
    return x, timesteps, context


def test_reference_has_the_course_state_dict_keys():
    if not REFERENCE_KEYS.exists():
        pytest.skip(f"{REFERENCE_KEYS} is absent: it lives in ../shared beside the checkout")
    rows = [line.split("\t") for line in REFERENCE_KEYS.read_text().splitlines() if line and not line.startswith("#")]
    expected = [(key, tuple(int(n) for n in shape.strip("()").split(",") if n.strip())) for key, shape in rows]
    state = CourseContextUnet().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 1_480_771


@torch.no_grad()
def test_converted_forward_equals_the_course_with_the_zero_shortcut(course, converted):
    model, _ = course
    unet = SpritePipeline.from_pretrained(converted).unet
    x, timesteps, context = inputs()
    model.shortcut_factory = zero_conv
    expected = model(x, ((timesteps + 1) / 500).float()[:, None], context)
    assert torch.allclose(unet(x, timesteps, context=context).sample, expected, atol=1e-5, rtol=1e-5)
    null = model(x, ((timesteps + 1) / 500).float()[:, None, None, None])  # the course's c=None is the zero context
    assert torch.allclose(unet(x, timesteps).sample, null, atol=1e-5, rtol=1e-5)
    assert torch.allclose(unet(x[:2], timesteps[:2], class_labels=torch.tensor([0, 4])).sample, expected[:2], atol=1e-5)


@torch.no_grad()
def test_the_shortcut_slot_is_where_the_course_adds_its_fresh_conv(course, converted):
    model, _ = course
    unet = SpritePipeline.from_pretrained(converted).unet
    x, timesteps, context = inputs(2)
    t_course = ((timesteps + 1) / 500).float()[:, None]
    model.shortcut_factory = fresh_random_conv  # the course: a new random conv per call
    torch.manual_seed(5)
    first = model(x, t_course, context)
    assert not torch.allclose(model(x, t_course, context), first, atol=1e-3)  # course outputs change call to call

    torch.manual_seed(5)
    fresh = torch.nn.Conv2d(3, 16, 1)  # the conv the course drew for `first`
    unet.init_conv.shortcut.load_state_dict(fresh.state_dict())
    assert torch.allclose(unet(x, timesteps, context=context).sample, first, atol=1e-5, rtol=1e-5)


def test_folders_load_with_the_course_schedule_and_a_card(course, converted, tmp_path):
    pipe = SpritePipeline.from_pretrained(converted)
    assert type(pipe.scheduler) is SpriteScheduler and pipe.scheduler.config.num_train_timesteps == 500
    assert pipe.unet.config.n_feat == 16 and pipe.unet.config.n_cfeat == 5 and not pipe.unet.training
    assert pipe.unet.init_conv.shortcut.weight.abs().sum() == 0 and pipe.unet.init_conv.shortcut.bias.abs().sum() == 0
    images = pipe(class_labels=[0, 3], num_inference_steps=3, output_type="pt").images
    assert images.shape == (2, 3, 16, 16)
    card = ModelCard.load(converted / "README.md")
    assert "| 4 | side-facing |" in card.text and "deeplearning-ai-course" in card.data.tags
    assert f'SpritePipeline.from_pretrained("{converted.resolve().as_posix()}")' in card.text

    unconditional = convert_course_checkpoint(course[1], tmp_path / "plain")
    pipe = DDPMPipeline.from_pretrained(unconditional)
    assert type(pipe.unet) is ContextUnet and type(pipe.scheduler) is SpriteScheduler
    assert pipe(batch_size=2, num_inference_steps=2, output_type="np").images.shape == (2, 16, 16, 3)


def assert_nothing_written(folder: Path):
    assert not folder.exists()
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}")] == []


def test_files_that_are_not_course_state_dicts_are_refused(course, tmp_path):
    out = tmp_path / "out"
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a flat state dict of tensors"):
        convert_course_checkpoint(tmp_path / "list.pth", out)
    torch.save(course[0], tmp_path / "module.pth")  # a pickled module, which weights_only refuses
    with pytest.raises(ValueError, match=r"weights_only=True.*nn_model.state_dict\(\)"):
        convert_course_checkpoint(tmp_path / "module.pth", out)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="lacks.*init_conv.conv1.0.weight"):
        convert_course_checkpoint(tmp_path / "other.pth", out)
    with pytest.raises(FileNotFoundError, match="model_trained.pth"):
        convert_course_checkpoint(tmp_path / "missing.pth", out)
    assert_nothing_written(out)


def test_wrong_keys_and_shapes_are_listed(course, tmp_path):
    out = tmp_path / "out"
    state = dict(course[0].state_dict())
    state["down1.model.0.conv1.0.weight"] = torch.zeros(16, 16, 5, 5)
    del state["timeembed1.model.2.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError) as err:
        convert_course_checkpoint(tmp_path / "broken.pth", out)
    message = str(err.value)
    assert "3 problems" in message and "missing timeembed1.model.2.bias (32,)" in message
    assert "unexpected extra.weight" in message
    assert "down1.model.0.conv1.0.weight has shape (16, 16, 5, 5), expected (16, 16, 3, 3)" in message
    torch.save(trained_looking(CourseContextUnet(n_feat=16, height=28)).state_dict(), tmp_path / "tall.pth")
    with pytest.raises(ValueError, match="trained at height 28.*only 16x16"):
        convert_course_checkpoint(tmp_path / "tall.pth", out)
    assert_nothing_written(out)


def test_an_existing_output_is_kept_unless_overwrite(course, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        convert_course_checkpoint(course[1], out)
    assert (out / "keep.txt").read_text() == "mine"
    convert_course_checkpoint(course[1], out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model_index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
