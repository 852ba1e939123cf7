"""The DeepLearning.AI "How Diffusion Models Work" lab-2 training loop, re-implemented as a reference.

What it reproduces (from the description in shared/reference/README.md; written independently):

- data: sprites stored as uint8 (N, H, W, C) NumPy arrays; a per-item `Dataset` applies
  `ToTensor()` + `Normalize(0.5, 0.5)` to each sprite; a `DataLoader` with `shuffle=True`,
  batch 100 and one worker process (as the course) collates them;
- model: the course ContextUnet at n_feat 64 for 16x16 RGB, trained without context (lab 2).
  It is `hf_sprites.ContextUnet` (the same architecture), so benchmarks compare the *loop*;
- schedule: beta_t = 1e-4 + (0.02 - 1e-4) t / 500 for t = 0..500, abar_0 = 1, t ~ U{1..500};
- noising **as the course writes it**: x_t = sqrt(abar_t) x + (1 - abar_t) eps. The course omits the
  square root on the noise term (the standard forward process, which hf_sprites trains with, is
  sqrt(1 - abar_t) eps); `standard_noise=True` switches to the standard form;
- Adam lr 1e-3, decayed linearly per epoch: lr = 1e-3 (1 - epoch / num_epochs); MSE on the noise;
- fp32, no compilation, `.to(device)` per batch, `zero_grad()` as in the notebook;
- with `labels` (lab 3): each sprite's class as a one-hot context vector, replaced by the zero context with
  probability 0.1 (the lab's context mask), passed to the model's `context` input.

Example:
    >>> import numpy as np
    >>> from course_loop import CourseLoop
    >>> sprites = np.random.randint(0, 256, (200, 16, 16, 3), dtype=np.uint8)
    >>> loop = CourseLoop(sprites, n_feat=16, num_workers=0)
    >>> stats = loop.train(max_steps=2)
    >>> stats["images"]
    200
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class SpriteArrayDataset(Dataset):
    """One sprite per `__getitem__`: uint8 HWC array -> ToTensor -> Normalize(0.5, 0.5) -> [-1, 1]."""

    def __init__(self, sprites: np.ndarray, labels: np.ndarray | None = None):
        self.sprites = sprites
        self.labels = labels if labels is not None else np.zeros(len(sprites), dtype=np.int64)
        channels = sprites.shape[-1]
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)]
        )

    def __len__(self) -> int:
        return len(self.sprites)

    def __getitem__(self, index: int):
        return self.transform(self.sprites[index]), torch.tensor(self.labels[index])


def course_schedule(num_steps: int = 500, beta1: float = 1e-4, beta2: float = 0.02, device="cpu"):
    """(b_t, a_t, ab_t) tensors of length num_steps + 1, with ab_t[0] = 1, as in the course."""
    b_t = (beta2 - beta1) * torch.linspace(0, 1, num_steps + 1, device=device) + beta1
    a_t = 1 - b_t
    ab_t = torch.cumsum(a_t.log(), dim=0).exp()
    ab_t[0] = 1
    return b_t, a_t, ab_t


def perturb(x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, ab_t: torch.Tensor, standard: bool = False):
    """Noise `x` to level `t` (1..T). Course form: sqrt(ab) x + (1 - ab) noise; standard: sqrt(1 - ab) noise."""
    ab = ab_t[t, None, None, None]
    noise_scale = (1 - ab).sqrt() if standard else (1 - ab)
    return ab.sqrt() * x + noise_scale * noise


class CourseLoop:
    """The lab-2 loop around `hf_sprites.ContextUnet`.

    Args:
        sprites: uint8 (N, H, W, C) array.
        n_feat, n_cfeat: ContextUnet widths (course: 64, 5).
        batch_size: course 100. lr: course 1e-3. num_epochs: for the lr decay (course 32).
        num_workers: DataLoader workers (course 1).
        timesteps: course 500. device: where the model trains. seed: init and shuffling.
        standard_noise: use sqrt(1 - abar) on the noise (False = as the course writes it).
        labels: integer class per sprite (lab 3: trains with context); None trains without (lab 2).
    """

    def __init__(
        self,
        sprites: np.ndarray,
        n_feat: int = 64,
        n_cfeat: int = 5,
        batch_size: int = 100,
        lr: float = 1e-3,
        num_epochs: int = 32,
        num_workers: int = 1,
        timesteps: int = 500,
        device="cpu",
        seed: int = 0,
        standard_noise: bool = False,
        labels: np.ndarray | None = None,
    ):
        from hf_sprites import ContextUnet

        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.timesteps, self.lr, self.num_epochs = timesteps, lr, num_epochs
        self.standard_noise = standard_noise
        self.context_classes = n_cfeat if labels is not None else None
        height = sprites.shape[1]
        self.model = ContextUnet(
            sample_size=height, in_channels=sprites.shape[-1], out_channels=sprites.shape[-1],
            n_feat=n_feat, n_cfeat=n_cfeat, num_train_timesteps=timesteps,
        ).to(self.device)
        self.dataloader = DataLoader(
            SpriteArrayDataset(sprites, labels), batch_size=batch_size, shuffle=True, num_workers=num_workers
        )
        self.optim = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.b_t, self.a_t, self.ab_t = course_schedule(timesteps, device=self.device)
        self.epoch = 0
        self._batches = None
        self.steps_into_epoch = 0

    def step(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One course training step on a batch of clean images (and, in lab 3, their class labels)."""
        self.optim.zero_grad()
        x = x.to(self.device)
        noise = torch.randn_like(x)
        t = torch.randint(1, self.timesteps + 1, (x.shape[0],)).to(self.device)
        x_pert = perturb(x, t, noise, self.ab_t, self.standard_noise)
        # hf_sprites.ContextUnet maps a scheduler timestep k to the course's time input (k + 1) / T,
        # so passing t - 1 feeds the network exactly the course's t / T.
        context = None
        if self.context_classes is not None:
            context = F.one_hot(labels.to(self.device), self.context_classes).float()
            context = context * torch.bernoulli(torch.full((x.shape[0], 1), 0.9, device=self.device))
        pred_noise = self.model(x_pert, t - 1, context=context).sample
        loss = F.mse_loss(pred_noise, noise)
        loss.backward()
        self.optim.step()
        return loss

    @property
    def finished(self) -> bool:
        """True once all `num_epochs` epochs of the course's schedule have run."""
        return self.epoch >= self.num_epochs

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The next batch of clean images and their labels; a new epoch (new shuffle, new worker, lr decay) when one ends;
        None when the last epoch has ended."""
        if self.finished:
            return None
        if self._batches is None:
            self.optim.param_groups[0]["lr"] = self.lr * (1 - self.epoch / self.num_epochs)
            self._batches = iter(self.dataloader)
            self.steps_into_epoch = 0
        try:
            batch = next(self._batches)
        except StopIteration:
            self._batches = None
            self.epoch += 1
            return self.next_batch()
        self.steps_into_epoch += 1
        return batch

    def train(self, max_steps: int | None = None, max_seconds: float | None = None) -> dict:
        """Train until `max_steps` steps, `max_seconds` or the end of the last epoch; continues where the last
        call stopped.

        Returns steps, images, seconds, img_per_s and the last loss of this call.
        """
        if max_steps is None and max_seconds is None:
            raise ValueError("CourseLoop.train needs max_steps or max_seconds.")
        self.model.train()
        steps = images = 0
        loss = None
        start = time.perf_counter()
        while not _done(steps, max_steps, time.perf_counter() - start, max_seconds):
            batch = self.next_batch()
            if batch is None:
                break
            x, labels = batch
            loss = self.step(x, labels)
            steps += 1
            images += x.shape[0]
        _sync(self.device)
        seconds = time.perf_counter() - start
        return {"steps": steps, "images": images, "seconds": seconds, "img_per_s": images / max(seconds, 1e-9),
                "last_loss": float(loss.detach()) if loss is not None else None}


def _done(steps: int, max_steps, elapsed: float, max_seconds) -> bool:
    return (max_steps is not None and steps >= max_steps) or (max_seconds is not None and elapsed >= max_seconds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
