"""The per-batch training step: noise, timesteps, forward pass with (dropped) labels, loss, update.

`loop.py` runs exactly `DiffusionLoss` + `train_batch`; benchmarks time the same two.

Example:
    >>> import torch
    >>> from diffusers import DDPMScheduler, UNet2DModel
    >>> from hf_sprites.training.step import DiffusionLoss
    >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 32),
    ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    >>> loss_fn = DiffusionLoss(DDPMScheduler(num_train_timesteps=100))
    >>> loss = loss_fn(unet, torch.rand(4, 1, 8, 8) * 2 - 1)
    >>> loss.ndim
    0
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from diffusers.training_utils import compute_snr

LOSSES = {"l2": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


def drop_context(context: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """The course's context dropout: each sample keeps its context vector with probability
    `1 - drop_prob` and gets the zero (null) context otherwise (on the device, no host sync)."""
    if drop_prob <= 0:
        return context
    keep = torch.rand(context.shape[0], 1, device=context.device) >= drop_prob
    return context * keep.to(context.dtype)


def diffusion_target(scheduler, *, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the model learns to predict, chosen by `scheduler.config.prediction_type`."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return clean
    if kind == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    raise ValueError(f"Unsupported prediction_type {kind!r}; use epsilon, sample or v_prediction.")


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023): each timestep's loss counts as if its
    signal-to-noise ratio were at most `gamma`, expressed for the scheduler's prediction type.

    >>> from diffusers import DDPMScheduler
    >>> w = min_snr_weights(DDPMScheduler(num_train_timesteps=1000), torch.tensor([0, 999]), gamma=5.0)
    >>> [round(float(x), 4) for x in w]  # clean timesteps (huge SNR) weigh little, noisy ones fully
    [0.0005, 1.0]
    """
    snr = compute_snr(scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return clipped / snr
    if kind == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def sample_noise(scheduler, clean: torch.Tensor) -> torch.Tensor:
    """Training noise: the scheduler's own distribution when it defines one (`noise_like`), else N(0, 1)."""
    if hasattr(scheduler, "noise_like"):
        return scheduler.noise_like(clean)
    return torch.randn_like(clean)


@dataclass
class DiffusionLoss:
    """Loss of one batch for any model with the UNet2DModel call signature.

    Args:
        scheduler: the noise scheduler (`add_noise`, `config.num_train_timesteps`, `config.prediction_type`).
        loss_type: "l2", "l1" or "huber".
        label_mode: how labels reach the model (`hf_sprites.training.config.label_mode`): None (ignored),
            "class_labels" (int labels, e.g. UNet2DModel with `num_class_embeds`) or "context" (the model's own
            `context_vector` of int labels or float vectors, ContextUnet).
        cond_drop_prob: probability of training a sample with the null context (classifier-free guidance).
        data_range: the scheduler's data range (its `config.data_range`): "-1..1" (images as loaded) or "0..1".
        snr_gamma: min-SNR-gamma loss weighting (`min_snr_weights`); None weighs every timestep the same.
    """

    scheduler: object
    _: KW_ONLY
    loss_type: str = "l2"
    label_mode: Optional[str] = None
    cond_drop_prob: float = 0.0
    data_range: str = "-1..1"
    snr_gamma: Optional[float] = None
    _unwrapped: tuple = field(default=(None, None), init=False, repr=False, compare=False)

    def __post_init__(self):
        self._loss = LOSSES[self.loss_type]
        self._num_steps = self.scheduler.config.num_train_timesteps

    def _inner_model(self, model):
        """`model` without accelerate's DDP / compile wrappers (looked up once per model)."""
        if self._unwrapped[0] is not model:
            self._unwrapped = (model, extract_model_from_parallel(model))
        return self._unwrapped[1]

    def model_kwargs(self, model, labels: Optional[torch.Tensor], clean: torch.Tensor) -> dict:
        """Keyword arguments that carry the (dropped-out) labels into the model."""
        if self.label_mode is None or labels is None:
            return {}
        if self.label_mode == "class_labels":
            return {"class_labels": labels}
        as_vectors = labels.is_floating_point()
        context = self._inner_model(model).context_vector(
            class_labels=None if as_vectors else labels, context=labels if as_vectors else None,
            batch_size=clean.shape[0], device=clean.device, dtype=clean.dtype,
        )
        return {"context": drop_context(context, self.cond_drop_prob)}

    def __call__(self, model, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        clean = (images + 1) / 2 if self.data_range == "0..1" else images
        noise = sample_noise(self.scheduler, clean)
        timesteps = torch.randint(0, self._num_steps, (clean.shape[0],), device=clean.device)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        prediction = model(noisy, timesteps, **self.model_kwargs(model, labels, clean), return_dict=False)[0]
        target = diffusion_target(self.scheduler, clean=clean, noise=noise, timesteps=timesteps)
        if self.snr_gamma is None:
            return self._loss(prediction.float(), target.float())
        per_sample = self._loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
        return (per_sample * min_snr_weights(self.scheduler, timesteps, self.snr_gamma)).mean()


def gradients_are_finite(model) -> bool:
    """Whether every gradient of `model` is a finite number (one host sync).

    >>> layer = torch.nn.Linear(2, 1)
    >>> layer(torch.tensor([[1.0, float("nan")]])).sum().backward()
    >>> gradients_are_finite(layer)
    False
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


class SkipNonFinite:
    """Skip an update whose gradients are not finite and undo what its forward passes did to the model's buffers
    (BatchNorm running statistics): the buffers are copied at the start of every update, and `keep` costs one host
    sync. The gradients are already reduced across processes, so every process decides the same."""

    def __init__(self):
        self._saved = None

    def start(self, model) -> None:
        if self._saved is None:  # the first batch of an update (several with gradient accumulation)
            self._saved = [buffer.detach().clone() for buffer in model.buffers()]

    def keep(self, model) -> bool:
        """At the end of an update: True when its gradients are finite, else restore the buffers and return False."""
        saved, self._saved = self._saved, None
        if gradients_are_finite(model):
            return True
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved):
                buffer.copy_(value)
        return False


def train_batch(accelerator, model, images, *, labels=None, loss_fn, optimizer, lr_scheduler, max_grad_norm=None,
                skip_non_finite: Optional[SkipNonFinite] = None):
    """One optimisation step as the training loop runs it (inside `accelerator.accumulate`).

    Returns the detached loss tensor (no host sync: call `.item()` only when logging). With `skip_non_finite`, an
    update whose gradients are not finite is not applied (see `SkipNonFinite`) and None is returned.
    """
    with accelerator.accumulate(model):
        if skip_non_finite is not None:
            skip_non_finite.start(model)
        loss = loss_fn(model, images, labels)
        accelerator.backward(loss)
        if skip_non_finite is not None and accelerator.sync_gradients and not skip_non_finite.keep(model):
            optimizer.zero_grad(set_to_none=True)
            return None
        if max_grad_norm is not None and accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()
