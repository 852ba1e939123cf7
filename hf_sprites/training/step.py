"""The per-batch training step: noise, timesteps, forward pass with (dropped) labels, loss, update.

`examples/train.py` runs exactly `DiffusionLoss` + `train_batch`; benchmarks time the same two.

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

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

LOSSES = {"l2": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


def drop_context(context: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """The course's context dropout: each sample keeps its context vector with probability
    `1 - drop_prob` and gets the zero (null) context otherwise."""
    if drop_prob <= 0:
        return context
    keep = torch.rand(context.shape[0], 1, device=context.device) >= drop_prob
    return context * keep.to(context.dtype)


def labels_to_context(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class labels (B,) become one-hot float vectors (B, num_classes); float vectors pass through."""
    if labels.is_floating_point():
        return labels
    return F.one_hot(labels, num_classes).float()


def diffusion_target(scheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the model learns to predict, chosen by `scheduler.config.prediction_type`."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return clean
    if kind == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    raise ValueError(f"Unsupported prediction_type {kind!r}; use epsilon, sample or v_prediction.")


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
        label_mode: how labels reach the model: None (ignored), "class_labels" (int labels, e.g. UNet2DModel
            with `num_class_embeds`) or "context" (one-hot / multi-hot float vectors, ContextUnet).
        num_classes: width of the one-hot context for integer labels.
        cond_drop_prob: probability of training a sample with the null context (classifier-free guidance).
        data_scale: maps data from [-1, 1] to the scheduler's range: "-1..1" (identity) or "0..1".
    """

    scheduler: object
    loss_type: str = "l2"
    label_mode: Optional[str] = None
    num_classes: Optional[int] = None
    cond_drop_prob: float = 0.0
    data_scale: str = "-1..1"

    def __post_init__(self):
        self._loss = LOSSES[self.loss_type]
        self._num_steps = self.scheduler.config.num_train_timesteps

    def model_kwargs(self, labels: Optional[torch.Tensor]) -> dict:
        """Keyword arguments that carry the (dropped-out) labels into the model."""
        if self.label_mode is None or labels is None:
            return {}
        if self.label_mode == "context":
            context = labels_to_context(labels, self.num_classes)
            return {"context": drop_context(context, self.cond_drop_prob)}
        return {"class_labels": labels}

    def __call__(self, model, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        clean = (images + 1) / 2 if self.data_scale == "0..1" else images
        noise = sample_noise(self.scheduler, clean)
        timesteps = torch.randint(0, self._num_steps, (clean.shape[0],), device=clean.device)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        prediction = model(noisy, timesteps, **self.model_kwargs(labels), return_dict=False)[0]
        target = diffusion_target(self.scheduler, clean, noise, timesteps)
        return self._loss(prediction.float(), target.float())


def train_batch(accelerator, model, loss_fn, optimizer, lr_scheduler, images, labels=None, max_grad_norm=None):
    """One optimisation step as the training loop runs it (inside `accelerator.accumulate`).

    Returns the detached loss tensor (no host sync: call `.item()` only when logging).
    """
    with accelerator.accumulate(model):
        loss = loss_fn(model, images, labels)
        accelerator.backward(loss)
        if max_grad_norm is not None and accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()
