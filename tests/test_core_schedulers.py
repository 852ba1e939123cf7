"""SpriteScheduler against the course's sampler equations; CorruptScheduler's corrupt/step and its two variants."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline

from hf_sprites import BasicUNet, ContextUnet, CorruptScheduler, SpritePipeline, SpriteScheduler

T = 500


def course_tables():
    """The course's schedule as described in ../shared/reference/README.md (501-point grid, ab_0 forced to 1)."""
    b = (0.02 - 1e-4) * torch.linspace(0, 1, T + 1) + 1e-4
    a = 1 - b
    ab = torch.cumsum(a.log(), dim=0).exp()
    ab[0] = 1
    return a, b, ab


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    return ContextUnet(n_feat=8, n_cfeat=5).eval()


def test_alphas_cumprod_is_the_course_schedule_shifted_by_one():
    _, _, ab = course_tables()
    s = SpriteScheduler()
    assert s.config.num_train_timesteps == 500 and s.config.clip_sample is False
    assert torch.allclose(s.alphas_cumprod, ab[1:], rtol=1e-5)


@torch.no_grad()
def test_full_ddpm_chain_matches_the_course_sampler(tiny_unet):
    a, b, ab = course_tables()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g)
    for i in range(T, 0, -1):  # the course: t = i / T, z = 0 at the last step
        z = torch.randn(x.shape, generator=g) if i > 1 else torch.zeros_like(x)
        eps = tiny_unet(x, i - 1).sample
        x = (x - eps * ((1 - a[i]) / (1 - ab[i]).sqrt())) / a[i].sqrt() + b[i].sqrt() * z

    pipe = DDPMPipeline(unet=tiny_unet, scheduler=SpriteScheduler())
    pipe.set_progress_bar_config(disable=True)
    ours = pipe(batch_size=2, generator=torch.Generator().manual_seed(1), output_type="pt").images  # no steps given: 1000 -> 500
    assert torch.allclose(ours, (x / 2 + 0.5).clamp(0, 1), atol=2e-4)


@torch.no_grad()
def test_ddim_swap_matches_the_course_fast_sampler(tiny_unet):
    _, _, ab = course_tables()
    n = 25
    stride = T // n
    x0 = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    x = x0.clone()
    for i in range(T, 0, -stride):
        eps = tiny_unet(x, i - 1).sample
        x = ab[i - stride].sqrt() / ab[i].sqrt() * (x - (1 - ab[i]).sqrt() * eps) + (1 - ab[i - stride]).sqrt() * eps

    scheduler = DDIMScheduler.from_config(SpriteScheduler().config)
    scheduler.set_timesteps(n)
    y = x0.clone()
    for t in scheduler.timesteps:
        y = scheduler.step(tiny_unet(y, t).sample, t, y).prev_sample
    assert torch.allclose(y, x, atol=1e-4)


def test_set_timesteps_caps_at_the_schedule_length():
    s = SpriteScheduler()
    s.set_timesteps(1000)
    assert s.timesteps.tolist() == list(range(499, -1, -1))


def test_without_extra_noise_the_step_is_the_deterministic_mean():
    s = SpriteScheduler.from_config(SpriteScheduler().config, extra_noise=False)
    assert s.config.extra_noise is False
    s.set_timesteps(500)
    x, eps = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    out1 = s.step(eps, 300, x, generator=torch.manual_seed(0)).prev_sample
    out2 = s.step(eps, 300, x, generator=torch.manual_seed(1)).prev_sample
    assert torch.equal(out1, out2)
    noisy = SpriteScheduler().step(eps, 300, x, generator=torch.manual_seed(0)).prev_sample
    assert not torch.allclose(noisy, out1)


def test_corrupt_is_a_linear_blend_by_amount():
    s = CorruptScheduler(num_train_timesteps=100)
    x, noise = torch.full((3, 1, 2, 2), 2.0), torch.full((3, 1, 2, 2), -1.0)
    out = s.add_noise(x, noise, torch.tensor([0, 49, 99]))
    amount = torch.tensor([0.01, 0.5, 1.0]).view(-1, 1, 1, 1)
    assert torch.allclose(out, x * (1 - amount) + noise * amount)
    s.set_timesteps(4)
    assert torch.allclose(s.amount(s.timesteps), torch.tensor([1.0, 0.75, 0.5, 0.25]))


class Oracle(BasicUNet):
    """Predicts a fixed clean image whatever the input: the sampler must land exactly on it."""

    def forward(self, sample, timestep=None, class_labels=None, return_dict=True):
        return type(super().forward(sample))(sample=self.target.expand_as(sample))


@pytest.mark.parametrize("steps", [1, 7, None])
def test_corrupt_sampler_lands_on_the_prediction_inside_stock_ddpm_pipeline(steps):
    unet = Oracle(sample_size=8)
    unet.target = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    pipe = DDPMPipeline(unet=unet, scheduler=CorruptScheduler(num_train_timesteps=50))
    pipe.set_progress_bar_config(disable=True)
    kwargs = {} if steps is None else {"num_inference_steps": steps}
    image = pipe(batch_size=2, output_type="pt", **kwargs).images
    assert torch.allclose(image, (unet.target / 2 + 0.5).expand(2, 1, 8, 8).permute(0, 1, 2, 3), atol=1e-6)


def test_lesson_variant_uses_uniform_noise_and_unit_range_in_sprite_pipeline():
    scheduler = CorruptScheduler(num_train_timesteps=20, noise_distribution="uniform", data_range="0..1")
    start = scheduler.noise_like(torch.empty(1000), generator=torch.manual_seed(0))
    assert start.min() >= 0 and start.max() <= 1 and abs(float(start.mean()) - 0.5) < 0.05
    unet = Oracle(sample_size=8)
    unet.target = torch.linspace(0, 1, 64).view(1, 1, 8, 8)
    pipe = SpritePipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(batch_size=1, num_inference_steps=5, output_type="pt").images
    assert torch.allclose(image, unet.target, atol=1e-6)


def test_scheduler_options_are_validated():
    with pytest.raises(ValueError, match="noise_distribution"):
        CorruptScheduler(noise_distribution="laplace")
    with pytest.raises(ValueError, match="epsilon"):
        SpriteScheduler(prediction_type="sample")
    assert np.isclose(SpriteScheduler().betas[1].item(), 1e-4 + (0.02 - 1e-4) * 2 / 500)


def test_bad_step_counts_get_clear_errors():
    with pytest.raises(ValueError, match="positive integer"):
        CorruptScheduler().set_timesteps(0)
    with pytest.raises(ValueError, match="not one of this scheduler's timesteps"):
        scheduler = CorruptScheduler(num_train_timesteps=10)
        scheduler.set_timesteps(2)
        scheduler.step(torch.zeros(1), 3, torch.zeros(1))
    pipe = SpritePipeline(unet=ContextUnet(n_feat=8), scheduler=SpriteScheduler())
    with pytest.raises(ValueError, match="positive integer"):
        pipe(class_labels=[0], num_inference_steps=0)
