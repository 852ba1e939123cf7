"""ContextUnet and BasicUNet: architecture facts, inputs, errors, loading by class name."""

import pytest
import torch
from diffusers import UNet2DModel

import hf_sprites
from hf_sprites import BasicUNet, ContextUnet
from hf_sprites.models import load_unet

COURSE_PARAMS = 1_480_771  # the course model at n_feat=64, n_cfeat=5, 16x16 RGB (../shared/reference)


def test_context_unet_parameter_count_is_the_course_plus_the_learned_shortcut():
    unet = ContextUnet(sample_size=16, in_channels=3, n_feat=64, n_cfeat=5)
    shortcut = sum(p.numel() for p in unet.init_conv.shortcut.parameters())
    assert shortcut == 3 * 64 + 64
    assert sum(p.numel() for p in unet.parameters()) == COURSE_PARAMS + shortcut


def test_context_unet_config_carries_what_ddpm_pipeline_reads():
    unet = ContextUnet(sample_size=32, in_channels=4, out_channels=4, n_feat=16, n_cfeat=3)
    assert isinstance(unet, UNet2DModel)
    for key, value in dict(sample_size=32, in_channels=4, out_channels=4, n_feat=16, n_cfeat=3, num_train_timesteps=500).items():
        assert unet.config[key] == value
    assert unet.dtype == torch.float32


def test_context_unet_time_input_is_course_t_over_T():
    unet = ContextUnet(n_feat=8)
    t = unet.course_time(torch.tensor([0, 499]), 2, "cpu", torch.float32)
    assert torch.allclose(t, torch.tensor([[1 / 500], [1.0]]))
    assert unet.course_time(torch.tensor(9), 3, "cpu", torch.float32).shape == (3, 1)


def test_class_labels_equal_one_hot_context_and_null_context_is_zeros():
    torch.manual_seed(0)
    unet = ContextUnet(n_feat=8, n_cfeat=5).eval()
    x = torch.randn(3, 3, 16, 16)
    by_label = unet(x, 5, class_labels=torch.tensor([0, 2, 4])).sample
    by_context = unet(x, 5, context=torch.eye(5)[[0, 2, 4]]).sample
    assert torch.allclose(by_label, by_context)
    assert torch.allclose(unet(x, 5).sample, unet(x, 5, context=torch.zeros(3, 5)).sample)
    mixed = unet(x, 5, context=torch.tensor([[1, 0, 0.6, 0, 0]] * 3)).sample
    assert not torch.allclose(mixed, by_context)


def test_context_changes_output_and_timestep_per_sample_matches_scalar():
    torch.manual_seed(0)
    unet = ContextUnet(n_feat=8).eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(unet(x, torch.tensor([7, 7])).sample, unet(x, 7).sample)
    assert not torch.allclose(unet(x, 7, class_labels=torch.tensor([0, 0])).sample, unet(x, 7, class_labels=torch.tensor([1, 1])).sample)


@pytest.mark.parametrize("size", [15, 18, 2])
def test_context_unet_rejects_sizes_not_divisible_by_4(size):
    with pytest.raises(ValueError, match="multiple of 4"):
        ContextUnet(sample_size=size)


def test_bad_inputs_get_clear_errors():
    unet = ContextUnet(n_feat=8, n_cfeat=5)
    with pytest.raises(ValueError, match=r"expects \(3, 16, 16\)"):
        unet(torch.randn(1, 3, 32, 32), 0)
    with pytest.raises(ValueError, match=r"expects \(3, 16, 16\)"):
        unet(torch.randn(1, 1, 16, 16), 0)
    with pytest.raises(ValueError, match="out of range"):
        unet(torch.randn(1, 3, 16, 16), 0, class_labels=torch.tensor([5]))
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        unet(torch.randn(1, 3, 16, 16), 0, context=torch.ones(1, 4))
    with pytest.raises(ValueError, match="multiple of 8"):
        ContextUnet(n_feat=12)
    with pytest.raises(ValueError, match="`block_norm` must be one of"):
        ContextUnet(n_feat=8, block_norm="layer")
    with pytest.raises(ValueError, match="expects"):
        BasicUNet(sample_size=28)(torch.randn(1, 3, 28, 28), 0)


def test_basic_unet_is_the_course_architecture_and_ignores_time():
    net = BasicUNet(sample_size=28).eval()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (5, 5)), (32, 64, (5, 5)), (64, 64, (5, 5)), (64, 64, (5, 5)), (64, 32, (5, 5)), (32, 1, (5, 5))
    ]
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(net(x, 0).sample, net(x, 999).sample)
    assert net(x, 0).sample.min() < -0.3  # no SiLU on the last layer: it can reach the [-1, 1] data range


def test_top_level_exposes_the_names_the_diffusers_loader_looks_up():
    for name in ("ModelMixin", "SchedulerMixin", "DiffusionPipeline"):
        assert getattr(hf_sprites, name) is not None
    for module in (hf_sprites.models.context_unet, hf_sprites.models.basic_unet, hf_sprites.schedulers.sprite,
                   hf_sprites.schedulers.corrupt, hf_sprites.pipelines.sprite_pipeline):
        assert hasattr(module, "ModelMixin") and hasattr(module, "SchedulerMixin")


def test_load_unet_picks_the_class_from_the_config(tmp_path):
    ContextUnet(n_feat=8, n_cfeat=3).save_pretrained(tmp_path / "unet")
    unet = load_unet(tmp_path)
    assert type(unet) is ContextUnet and unet.config.n_cfeat == 3
    with pytest.raises(FileNotFoundError, match="no unet config"):
        load_unet(tmp_path / "missing")


def test_group_norm_context_unet_normalises_each_image_alone_and_keeps_no_statistics(tmp_path):
    torch.manual_seed(0)
    x, t = torch.randn(4, 3, 16, 16), torch.tensor([3, 100, 250, 499])
    grouped = ContextUnet(n_feat=8, n_cfeat=5, block_norm="group").train()
    course = ContextUnet(n_feat=8, n_cfeat=5).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in grouped.modules()) and not list(grouped.buffers())
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in grouped.modules()) == 2 + 2 * 9  # the up path + 9 residual blocks
    # in training, an image's output does not depend on the rest of its batch (with BatchNorm it does)
    def first_of(model, pair):
        return model(x[pair], t[pair]).sample[0]

    assert torch.allclose(first_of(grouped, [0, 1]), first_of(grouped, [0, 2]), atol=1e-5)
    assert not torch.allclose(first_of(course, [0, 1]), first_of(course, [0, 2]), atol=1e-3)
    # the same weights give the same output in training and sampling mode; saved and loaded by its config
    grouped.eval()
    assert torch.allclose(grouped(x, t).sample, grouped.train()(x, t).sample, atol=1e-5)
    grouped.eval().save_pretrained(tmp_path / "unet")
    loaded = load_unet(tmp_path)
    assert loaded.config.block_norm == "group"
    assert torch.equal(loaded.eval()(x, t).sample, grouped(x, t).sample)


def test_a_saved_context_unet_without_block_norm_in_its_config_loads_with_the_courses_batchnorm(tmp_path):
    import json

    ContextUnet(n_feat=8, n_cfeat=3).save_pretrained(tmp_path / "unet")
    config_file = tmp_path / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    assert config.pop("block_norm") == "batch"
    config_file.write_text(json.dumps(config))  # as saved before the option existed
    unet = load_unet(tmp_path)
    assert unet.config.block_norm == "batch"
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in unet.modules()) == 2 * 9
