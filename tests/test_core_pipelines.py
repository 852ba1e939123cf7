"""Save -> from_pretrained round trips in a fresh interpreter, the no-argument call, the conditional pipeline."""

import functools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from hf_sprites import BasicUNet, ContextUnet, CorruptScheduler, SpritePipeline, SpriteScheduler


def tiny_unet2d(**kwargs):
    return UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, **kwargs)


MODELS = {
    "context_unet": lambda: ContextUnet(sample_size=16, n_feat=8, n_cfeat=5),
    "basic_unet": lambda: BasicUNet(sample_size=16, in_channels=3, out_channels=3),
    "unet2d": tiny_unet2d,
}
SCHEDULERS = {
    "sprite": SpriteScheduler,
    "corrupt": lambda: CorruptScheduler(num_train_timesteps=200),
    "ddpm": lambda: DDPMScheduler(num_train_timesteps=200),
}
CONDITIONAL = {
    "context_unet+sprite": lambda: (ContextUnet(sample_size=16, n_feat=8, n_cfeat=5), SpriteScheduler()),
    "unet2d_labels+ddpm": lambda: (tiny_unet2d(num_class_embeds=5), DDPMScheduler(num_train_timesteps=200)),
}

RELOAD = textwrap.dedent(
    """
    import json, sys, numpy as np, torch
    import hf_sprites
    from diffusers import DDPMPipeline
    from hf_sprites import SpritePipeline
    jobs = json.loads(sys.argv[1])
    for job in jobs:
        cls = SpritePipeline if job["conditional"] else DDPMPipeline
        pipe = cls.from_pretrained(job["path"])
        pipe.set_progress_bar_config(disable=True)
        kwargs = {"class_labels": [0, 3]} if job["conditional"] else {"batch_size": 2}
        images = pipe(num_inference_steps=3, generator=torch.manual_seed(0), output_type="np", **kwargs).images
        np.save(job["path"] + "/out.npy", images)
        print(job["path"], type(pipe.unet).__name__, type(pipe.scheduler).__name__)
    """
)


def sample(pipe, conditional):
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"class_labels": [0, 3]} if conditional else {"batch_size": 2}
    return pipe(num_inference_steps=3, generator=torch.manual_seed(0), output_type="np", **kwargs).images


def test_every_model_and_scheduler_round_trips_through_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    expected, jobs = {}, []
    for model_name, make_model in MODELS.items():
        for scheduler_name, make_scheduler in SCHEDULERS.items():
            path = str(tmp_path / f"{model_name}+{scheduler_name}")
            pipe = DDPMPipeline(unet=make_model().eval(), scheduler=make_scheduler())
            pipe.save_pretrained(path)
            expected[path] = (sample(pipe, False), type(pipe.unet).__name__, type(pipe.scheduler).__name__)
            jobs.append({"path": path, "conditional": False})
    for name, make in CONDITIONAL.items():
        path = str(tmp_path / f"conditional-{name}")
        unet, scheduler = make()
        pipe = SpritePipeline(unet=unet.eval(), scheduler=scheduler)
        pipe.save_pretrained(path)
        expected[path] = (sample(pipe, True), type(unet).__name__, type(scheduler).__name__)
        jobs.append({"path": path, "conditional": True})

    result = subprocess.run([sys.executable, "-c", RELOAD, json.dumps(jobs)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for line in result.stdout.strip().splitlines():
        path, unet_cls, scheduler_cls = line.split()
        images, want_unet, want_scheduler = expected[path]
        assert (unet_cls, scheduler_cls) == (want_unet, want_scheduler)
        np.testing.assert_allclose(np.load(path + "/out.npy"), images, atol=1e-6)
    assert len(result.stdout.strip().splitlines()) == len(jobs)


@pytest.mark.parametrize("make", [lambda: (ContextUnet(n_feat=8), SpriteScheduler()),
                                  lambda: (BasicUNet(sample_size=16, in_channels=3, out_channels=3), CorruptScheduler())])
def test_no_argument_call_after_loading(tmp_path, make):
    unet, scheduler = make()
    DDPMPipeline(unet=unet.eval(), scheduler=scheduler).save_pretrained(tmp_path)
    pipe = DDPMPipeline.from_pretrained(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    image = pipe().images[0]  # diffusers asks for 1000 steps; the schedule runs all of its own
    assert image.size == (16, 16)
    assert len(pipe.scheduler.timesteps) == scheduler.config.num_train_timesteps


@pytest.fixture(scope="module")
def sprite_pipe():
    torch.manual_seed(0)
    pipe = SpritePipeline(unet=ContextUnet(n_feat=8, n_cfeat=5).eval(), scheduler=SpriteScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", 4)
    return pipe(generator=torch.manual_seed(0), output_type="pt", **kwargs)


def test_guidance_one_is_the_plain_conditional_call_and_guidance_uses_the_null_context(sprite_pipe):
    plain = run(sprite_pipe, class_labels=[1, 2]).images
    assert torch.equal(plain, run(sprite_pipe, class_labels=[1, 2], guidance_scale=1.0).images)
    guided = run(sprite_pipe, class_labels=[1, 2], guidance_scale=3.0, num_inference_steps=1).images

    # one step by hand: eps = uncond + 3 * (cond - uncond), from the same starting noise
    unet, scheduler = sprite_pipe.unet, sprite_pipe.scheduler
    g = torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=g)
    scheduler.set_timesteps(1)
    t = scheduler.timesteps[0]
    cond = unet(x, t, context=torch.eye(5)[[1, 2]]).sample
    uncond = unet(x, t, context=torch.zeros(2, 5)).sample
    x = scheduler.step(uncond + 3.0 * (cond - uncond), t, x, generator=g).prev_sample
    assert torch.allclose(guided, (x / 2 + 0.5).clamp(0, 1), atol=1e-5)


def test_guidance_interval_guides_only_its_steps(sprite_pipe, monkeypatch):
    calls = []  # the batch each model call sees: 2 images plain, 4 when guided (conditional + null context)
    forward = sprite_pipe.unet.forward

    @functools.wraps(forward)  # keeps the signature: the pipeline reads the `context` input from it
    def counted(x, *args, **kwargs):
        calls.append(len(x))
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(sprite_pipe.unet, "forward", counted)
    everywhere = run(sprite_pipe, class_labels=[1, 2], guidance_scale=3.0, num_inference_steps=10).images
    assert calls == [4] * 10
    calls.clear()
    assert torch.equal(everywhere, run(sprite_pipe, class_labels=[1, 2], guidance_scale=3.0, num_inference_steps=10,
                                       guidance_interval=(0.0, 1.0)).images)
    calls.clear()
    middle = run(sprite_pipe, class_labels=[1, 2], guidance_scale=3.0, num_inference_steps=10,
                 guidance_interval=(0.2, 0.75)).images
    assert calls == [2, 2] + [4] * 5 + [2] * 3  # steps int(0.2 * 10) = 2 to int(0.75 * 10) = 7, as diffusers' guiders
    assert not torch.allclose(middle, everywhere)
    for bad in [(0.5, 0.5), (-0.1, 1.0), (0.0, 1.5), 0.5, (0.1, 0.2, 0.3)]:
        with pytest.raises(ValueError, match="guidance_interval must be"):
            run(sprite_pipe, class_labels=[1], guidance_scale=3.0, guidance_interval=bad)


def test_mixed_contexts_and_labels_agree_with_one_hot(sprite_pipe):
    by_label = run(sprite_pipe, class_labels=[0, 4]).images
    by_context = run(sprite_pipe, context=[[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]).images
    assert torch.allclose(by_label, by_context)
    mixed = run(sprite_pipe, context=[[1, 0, 0.6, 0, 0], [0, 0, 0, 0, 1]]).images
    assert mixed.shape == (2, 3, 16, 16) and not torch.allclose(mixed[0], by_label[0])
    assert run(sprite_pipe, class_labels=[2], batch_size=3).images.shape[0] == 3


@pytest.mark.parametrize("scheduler_cls,steps", [(DDIMScheduler, 25), (DPMSolverMultistepScheduler, 20)])
def test_scheduler_swaps_with_from_config(sprite_pipe, scheduler_cls, steps, tmp_path):
    pipe = SpritePipeline(unet=sprite_pipe.unet, scheduler=scheduler_cls.from_config(sprite_pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    out = run(pipe, class_labels=[0, 1], num_inference_steps=steps, return_intermediates=True)
    assert out.images.shape == (2, 3, 16, 16) and len(out.intermediates) == steps
    assert torch.equal(out.intermediates[-1], out.images)
    pipe.save_pretrained(tmp_path)
    assert type(SpritePipeline.from_pretrained(tmp_path).scheduler) is scheduler_cls


def test_conditional_errors_come_before_any_work(sprite_pipe):
    with pytest.raises(ValueError, match="out of range"):
        sprite_pipe(class_labels=[5])
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        sprite_pipe(context=[[1, 0, 0]])
    with pytest.raises(ValueError, match="not both"):
        sprite_pipe(class_labels=[0], context=[[1, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="make them agree"):
        sprite_pipe(class_labels=[0, 1], batch_size=3)
    with pytest.raises(ValueError, match="needs `class_labels`"):
        sprite_pipe(guidance_scale=2.0)
    unconditional = SpritePipeline(unet=BasicUNet(sample_size=16), scheduler=CorruptScheduler())
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(class_labels=[0])


class LabelsOrContextUNet(UNet2DModel):
    """A unet with a `context` input but no `context_vector`: the pipeline must pass its labels through unchanged."""

    def forward(self, sample, timestep, class_labels=None, context=None, return_dict=True):
        if context is not None:
            class_labels = context.argmax(dim=1)
        return super().forward(sample, timestep, class_labels=class_labels, return_dict=return_dict)


def test_labels_reach_a_unet_without_context_vector_as_labels():
    unet = LabelsOrContextUNet.from_config(tiny_unet2d(num_class_embeds=5).config).eval()
    pipe = SpritePipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=20))
    pipe.set_progress_bar_config(disable=True)
    _, cond = pipe.prepare_conditioning(1, [0, 3], None, "cpu", torch.float32)
    assert list(cond) == ["class_labels"] and cond["class_labels"].tolist() == [0, 3]
    by_label = run(pipe, class_labels=[0, 3], num_inference_steps=2).images
    assert torch.allclose(by_label, run(pipe, context=torch.eye(5)[[0, 3]], num_inference_steps=2).images)
    with pytest.raises(ValueError, match="no `context_vector`"):
        pipe(class_labels=[0], guidance_scale=2.0)
    assert run(pipe, context=torch.eye(5)[[1]], guidance_scale=2.0, num_inference_steps=2).images.shape[0] == 1


def test_labels_become_the_unets_own_context_vectors(sprite_pipe):
    batch_size, cond = sprite_pipe.prepare_conditioning(3, [2], None, "cpu", torch.float32)
    assert batch_size == 3 and torch.equal(cond["context"], torch.eye(5)[[2, 2, 2]])


def test_missing_model_files_fail_on_load(tmp_path):
    DDPMPipeline(unet=ContextUnet(n_feat=8).eval(), scheduler=SpriteScheduler()).save_pretrained(tmp_path)
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(OSError, match="diffusion_pytorch_model"):
        DDPMPipeline.from_pretrained(tmp_path)
