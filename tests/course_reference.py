"""An independent re-implementation of the DeepLearning.AI course's sprite ContextUnet, used only by the tests.

It follows the description in `shared/reference/README.md` and reproduces the course's state-dict keys exactly
(`shared/reference/course_contextunet_state_dict.txt`), so a `.pth` saved from it is what the course saves. It is
deliberately written without importing anything from `hf_sprites`: the conversion tests compare the converted
`hf_sprites.ContextUnet` against this module, so sharing code would hide mistakes.

The course's residual init block projects its input with a 1x1 conv that is created anew, untrained, inside every
forward call. `CourseContextUnet.shortcut_factory` reproduces that (a fresh `nn.Conv2d` per call, drawn from the
global RNG); tests may replace the factory to make the projection deterministic.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def fresh_random_conv(in_channels: int, out_channels: int) -> nn.Module:
    """What the course does: a brand-new 1x1 conv with PyTorch's default random initialisation."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


class CourseResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, is_res: bool = False, shortcut_factory: Callable | None = None):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU())
        self.is_res = is_res
        self.same_channels = cin == cout
        self.shortcut_factory = shortcut_factory or fresh_random_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        if not self.is_res:
            return y
        if self.same_channels:
            residual = x
        else:
            projection = self.shortcut_factory(x.shape[1], y.shape[1]).to(x.device, x.dtype)
            residual = projection(x)
        return (residual + y) / 1.414


class CourseDown(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.model = nn.Sequential(CourseResidualBlock(cin, cout), CourseResidualBlock(cout, cout), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class CourseUp(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2),
            CourseResidualBlock(cout, cout),
            CourseResidualBlock(cout, cout),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([x, skip], dim=1))


class CourseEmbed(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.d_in = d_in
        self.model = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.model(v.view(-1, self.d_in))


class CourseContextUnet(nn.Module):
    """The course's ContextUnet(in_channels, n_feat, n_cfeat, height); `forward(x, t, c=None)` with `t` = step / T."""

    def __init__(self, in_channels: int = 3, n_feat: int = 64, n_cfeat: int = 5, height: int = 16):
        super().__init__()
        self.n_feat, self.n_cfeat = n_feat, n_cfeat
        wide = 2 * n_feat
        self.init_conv = CourseResidualBlock(in_channels, n_feat, is_res=True)
        self.down1 = CourseDown(n_feat, n_feat)
        self.down2 = CourseDown(n_feat, wide)
        self.to_vec = nn.Sequential(nn.AvgPool2d(4), nn.GELU())
        self.timeembed1 = CourseEmbed(1, wide)
        self.timeembed2 = CourseEmbed(1, n_feat)
        self.contextembed1 = CourseEmbed(n_cfeat, wide)
        self.contextembed2 = CourseEmbed(n_cfeat, n_feat)
        self.up0 = nn.Sequential(
            nn.ConvTranspose2d(wide, wide, height // 4, height // 4), nn.GroupNorm(8, wide), nn.ReLU()
        )
        self.up1 = CourseUp(4 * n_feat, n_feat)
        self.up2 = CourseUp(wide, n_feat)
        self.out = nn.Sequential(
            nn.Conv2d(wide, n_feat, 3, 1, 1), nn.GroupNorm(8, n_feat), nn.ReLU(), nn.Conv2d(n_feat, in_channels, 3, 1, 1)
        )

    @property
    def shortcut_factory(self) -> Callable:
        return self.init_conv.shortcut_factory

    @shortcut_factory.setter
    def shortcut_factory(self, factory: Callable) -> None:
        self.init_conv.shortcut_factory = factory

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            c = torch.zeros(x.shape[0], self.n_cfeat, device=x.device, dtype=x.dtype)
        x0 = self.init_conv(x)
        d1 = self.down1(x0)
        d2 = self.down2(d1)
        hidden = self.to_vec(d2)
        cemb1 = self.contextembed1(c).view(-1, 2 * self.n_feat, 1, 1)
        temb1 = self.timeembed1(t).view(-1, 2 * self.n_feat, 1, 1)
        cemb2 = self.contextembed2(c).view(-1, self.n_feat, 1, 1)
        temb2 = self.timeembed2(t).view(-1, self.n_feat, 1, 1)
        u1 = self.up0(hidden)
        u2 = self.up1(cemb1 * u1 + temb1, d2)
        u3 = self.up2(cemb2 * u2 + temb2, d1)
        return self.out(torch.cat((u3, x0), 1))
