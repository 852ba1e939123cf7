"""The training configuration: the command line it accepts and the values it resolves to."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import pytest

from hf_sprites.training.config import (TrainConfig, TrainConfigError, build_parser, check_config, flag, flag_kwargs,
                                        parse_train_args)

# Pinned from the parser before the flags were generated from `TrainConfig` (help texts left out: they may improve).
FLAGS = [
    # (dest, option strings, type, choices, nargs, action, metavar)
    ('help', ('-h', '--help'), None, None, 0, '_HelpAction', None),
    ('preset', ('--preset',), 'str', None, None, '_StoreAction', None),
    ('config', ('--config',), 'str', None, None, '_StoreAction', 'FILE.yaml'),  # issue 9
    ('dataset_name', ('--dataset_name',), 'str', None, None, '_StoreAction', None),
    ('dataset_config_name', ('--dataset_config_name',), 'str', None, None, '_StoreAction', None),
    ('train_data_dir', ('--train_data_dir',), 'str', None, None, '_StoreAction', None),
    ('split', ('--split',), 'str', None, None, '_StoreAction', None),
    ('image_column', ('--image_column',), 'str', None, None, '_StoreAction', None),
    ('class_column', ('--class_column',), 'str', None, None, '_StoreAction', None),
    ('cache_dir', ('--cache_dir',), 'str', None, None, '_StoreAction', None),
    ('max_train_samples', ('--max_train_samples',), 'int', None, None, '_StoreAction', None),
    ('resolution', ('--resolution',), 'int', None, None, '_StoreAction', None),
    ('in_channels', ('--in_channels',), 'int', (1, 3), None, '_StoreAction', None),
    ('center_crop', ('--center_crop', '--no-center_crop'), None, None, 0, 'BooleanOptionalAction', None),
    ('random_flip', ('--random_flip', '--no-random_flip'), None, None, 0, 'BooleanOptionalAction', None),
    ('balance_classes', ('--balance_classes', '--no-balance_classes'), None, None, 0, 'BooleanOptionalAction', None),
    ('interpolation', ('--interpolation',), None, ('nearest', 'bilinear'), None, '_StoreAction', None),
    ('background', ('--background',), 'int', None, 3, '_StoreAction', ('R', 'G', 'B')),
    ('cache_on_device', ('--cache_on_device',), None, ('auto', 'always', 'never'), None, '_StoreAction', None),
    ('dataloader_num_workers', ('--dataloader_num_workers',), 'int', None, None, '_StoreAction', None),
    ('model', ('--model',), None, ('context_unet', 'basic_unet', 'unet2d'), None, '_StoreAction', None),
    ('model_config_name_or_path', ('--model_config_name_or_path',), 'str', None, None, '_StoreAction', None),
    ('n_feat', ('--n_feat',), 'int', None, None, '_StoreAction', None),
    ('n_cfeat', ('--n_cfeat',), 'int', None, None, '_StoreAction', None),
    ('block_norm', ('--block_norm',), None, ('batch', 'group'), None, '_StoreAction', None),
    ('block_out_channels', ('--block_out_channels',), 'int', None, '+', '_StoreAction', None),
    ('down_block_types', ('--down_block_types',), 'str', None, '+', '_StoreAction', None),
    ('up_block_types', ('--up_block_types',), 'str', None, '+', '_StoreAction', None),
    ('layers_per_block', ('--layers_per_block',), 'int', None, None, '_StoreAction', None),
    ('conditional', ('--conditional', '--no-conditional'), None, None, 0, 'BooleanOptionalAction', None),
    ('cond_drop_prob', ('--cond_drop_prob',), 'float', None, None, '_StoreAction', None),
    ('ddpm_num_steps', ('--ddpm_num_steps',), 'int', None, None, '_StoreAction', None),
    ('ddpm_beta_schedule', ('--ddpm_beta_schedule',), None,
     ('linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid', 'course', 'cosine', 'quadratic'), None,
     '_StoreAction', None),
    ('ddpm_num_inference_steps', ('--ddpm_num_inference_steps',), 'int', None, None, '_StoreAction', None),
    ('prediction_type', ('--prediction_type',), None, ('epsilon', 'sample', 'v_prediction'), None, '_StoreAction',
     None),
    ('noise_distribution', ('--noise_distribution',), None, ('gaussian', 'uniform'), None, '_StoreAction', None),
    ('data_range', ('--data_range',), None, ('-1..1', '0..1'), None, '_StoreAction', None),
    ('loss_type', ('--loss_type',), None, ('l2', 'l1', 'huber'), None, '_StoreAction', None),
    ('guidance_scale', ('--guidance_scale',), 'float', None, None, '_StoreAction', None),
    ('train_batch_size', ('--train_batch_size',), 'int', None, None, '_StoreAction', None),
    ('eval_batch_size', ('--eval_batch_size',), 'int', None, None, '_StoreAction', None),
    ('num_epochs', ('--num_epochs',), 'int', None, None, '_StoreAction', None),
    ('max_train_steps', ('--max_train_steps',), 'int', None, None, '_StoreAction', None),
    ('gradient_accumulation_steps', ('--gradient_accumulation_steps',), 'int', None, None, '_StoreAction', None),
    ('lr_warmup_steps', ('--lr_warmup_steps',), 'int', None, None, '_StoreAction', None),
    ('seed', ('--seed',), 'int', None, None, '_StoreAction', None),
    ('learning_rate', ('--learning_rate',), 'float', None, None, '_StoreAction', None),
    ('adam_beta1', ('--adam_beta1',), 'float', None, None, '_StoreAction', None),
    ('adam_beta2', ('--adam_beta2',), 'float', None, None, '_StoreAction', None),
    ('adam_weight_decay', ('--adam_weight_decay',), 'float', None, None, '_StoreAction', None),
    ('adam_epsilon', ('--adam_epsilon',), 'float', None, None, '_StoreAction', None),
    ('max_grad_norm', ('--max_grad_norm',), 'float', None, None, '_StoreAction', None),
    ('ema_inv_gamma', ('--ema_inv_gamma',), 'float', None, None, '_StoreAction', None),
    ('ema_power', ('--ema_power',), 'float', None, None, '_StoreAction', None),
    ('ema_max_decay', ('--ema_max_decay',), 'float', None, None, '_StoreAction', None),
    ('optimizer', ('--optimizer',), None, ('adamw', 'adam'), None, '_StoreAction', None),
    ('lr_scheduler', ('--lr_scheduler',), None,
     ('linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup', 'course'), None,
     '_StoreAction', None),
    ('use_ema', ('--use_ema', '--no-use_ema'), None, None, 0, 'BooleanOptionalAction', None),
    ('mixed_precision', ('--mixed_precision',), None, ('no', 'fp16', 'bf16'), None, '_StoreAction', None),
    ('channels_last', ('--channels_last', '--no-channels_last'), None, None, 0, 'BooleanOptionalAction', None),
    ('torch_compile', ('--torch_compile', '--no-torch_compile'), None, None, 0, 'BooleanOptionalAction', None),
    ('torch_compile_mode', ('--torch_compile_mode',), None,
     ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'), None, '_StoreAction', None),
    ('output_dir', ('--output_dir',), 'str', None, None, '_StoreAction', None),
    ('overwrite_output_dir', ('--overwrite_output_dir', '--no-overwrite_output_dir'), None, None, 0,
     'BooleanOptionalAction', None),
    ('save_images_epochs', ('--save_images_epochs',), 'int', None, None, '_StoreAction', None),
    ('save_model_epochs', ('--save_model_epochs',), 'int', None, None, '_StoreAction', None),
    ('checkpointing_steps', ('--checkpointing_steps',), 'int', None, None, '_StoreAction', None),
    ('checkpoints_total_limit', ('--checkpoints_total_limit',), 'int', None, None, '_StoreAction', None),
    ('logging_steps', ('--logging_steps',), 'int', None, None, '_StoreAction', None),
    ('max_bad_steps', ('--max_bad_steps',), 'int', None, None, '_StoreAction', None),
    ('save_gif', ('--save_gif', '--no-save_gif'), None, None, 0, 'BooleanOptionalAction', None),
    ('resume_from_checkpoint', ('--resume_from_checkpoint',), 'str', None, None, '_StoreAction', None),
    ('logger', ('--logger', '--report_to'), None, ('tensorboard', 'wandb', 'trackio', 'comet_ml', 'mlflow', 'aim',
                                                   'clearml', 'dvclive', 'swanlab', 'all', 'none'), '+',
     '_StoreAction', 'TRACKER'),  # issue 9: one or more of accelerate's trackers
    ('logging_dir', ('--logging_dir',), 'str', None, None, '_StoreAction', None),
    ('push_to_hub', ('--push_to_hub', '--no-push_to_hub'), None, None, 0, 'BooleanOptionalAction', None),
    ('hub_model_id', ('--hub_model_id',), 'str', None, None, '_StoreAction', None),
    ('hub_token', ('--hub_token',), 'str', None, None, '_StoreAction', None),
    ('hub_private_repo', ('--hub_private_repo', '--no-hub_private_repo'), None, None, 0, 'BooleanOptionalAction', None),
    ('license', ('--license',), 'str', None, None, '_StoreAction', None),
]
DEFAULTS = {
    'dataset_name': None,
    'dataset_config_name': None,
    'train_data_dir': None,
    'split': 'train',
    'image_column': None,
    'class_column': None,
    'cache_dir': None,
    'max_train_samples': None,
    'resolution': 64,
    'in_channels': None,
    'center_crop': False,
    'random_flip': False,
    'balance_classes': False,
    'interpolation': 'bilinear',
    'background': (255, 255, 255),
    'cache_on_device': 'auto',
    'dataloader_num_workers': 0,
    'model': 'unet2d',
    'n_feat': 64,
    'n_cfeat': None,
    'block_norm': 'batch',
    'block_out_channels': (128, 128, 256, 256, 512, 512),
    'down_block_types': ('DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'),
    'up_block_types': ('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D'),
    'layers_per_block': 2,
    'conditional': False,
    'cond_drop_prob': 0.0,
    'ddpm_num_steps': 1000,
    'ddpm_beta_schedule': 'linear',
    'ddpm_num_inference_steps': None,
    'prediction_type': 'epsilon',
    'noise_distribution': 'gaussian',
    'data_range': '-1..1',
    'loss_type': 'l2',
    'guidance_scale': 1.0,
    'train_batch_size': 16,
    'eval_batch_size': 16,
    'num_epochs': 100,
    'max_train_steps': None,
    'gradient_accumulation_steps': 1,
    'optimizer': 'adamw',
    'learning_rate': 0.0001,
    'lr_scheduler': 'cosine',
    'lr_warmup_steps': 500,
    'adam_beta1': 0.95,
    'adam_beta2': 0.999,
    'adam_weight_decay': 1e-06,
    'adam_epsilon': 1e-08,
    'max_grad_norm': 1.0,
    'use_ema': True,
    'ema_inv_gamma': 1.0,
    'ema_power': 0.75,
    'ema_max_decay': 0.9999,
    'mixed_precision': 'no',
    'channels_last': False,
    'torch_compile': False,
    'torch_compile_mode': None,
    'seed': None,
    'output_dir': 'outputs/ddpm-model',
    'overwrite_output_dir': False,
    'save_images_epochs': 10,
    'save_model_epochs': 10,
    'save_gif': True,
    'checkpointing_steps': 500,
    'checkpoints_total_limit': None,
    'resume_from_checkpoint': None,
    'logger': ('tensorboard',),
    'license': 'apache-2.0',
    'logging_dir': 'logs',
    'logging_steps': 10,
    'max_bad_steps': 0,
    'push_to_hub': False,
    'hub_model_id': None,
    'hub_private_repo': False,
    'preset': None,
    'config': None,
    'model_config_name_or_path': None,
}


# Flags added since the pin, each with the issue that asked for it; a change to a pinned flag's choices is listed too.
ADDED_FLAGS = [
    # issue 8, quality per minute: budget-sized runs, the machine's threads and precision, min-SNR, fast previews
    ('snr_gamma', ('--snr_gamma',), 'float', None, None, '_StoreAction', None),
    ('preview_sampler', ('--preview_sampler',), None, ('ddpm', 'ddim', 'dpm'), None, '_StoreAction', None),
    ('time_budget_minutes', ('--time_budget_minutes',), 'float', None, None, '_StoreAction', None),
    ('lr_warmup_ratio', ('--lr_warmup_ratio',), 'float', None, None, '_StoreAction', None),
    ('cpu_threads', ('--cpu_threads',), 'int', None, None, '_StoreAction', None),
]
CHANGED_FLAGS = [
    ('mixed_precision', ('--mixed_precision',), None, ('no', 'fp16', 'bf16', 'auto'), None, '_StoreAction', None),
]
ADDED_DEFAULTS = {"snr_gamma": None, "preview_sampler": "ddpm", "time_budget_minutes": None, "lr_warmup_ratio": None,
                  "cpu_threads": None}


def flag_table(parser) -> dict:
    """dest -> (dest, option strings, type name, choices, nargs, action class, metavar) for every parser action."""
    return {
        action.dest: (action.dest, tuple(action.option_strings), getattr(action.type, "__name__", None),
                      None if action.choices is None else tuple(action.choices), action.nargs, type(action).__name__,
                      action.metavar)
        for action in parser._actions
    }


def test_the_parser_accepts_exactly_the_pinned_flags():
    assert flag_table(build_parser()) == {row[0]: row for row in FLAGS + ADDED_FLAGS + CHANGED_FLAGS}


def test_the_dataclass_defaults_are_the_pinned_ones():
    assert TrainConfig().public_dict() == {**DEFAULTS, **ADDED_DEFAULTS}


# --- one field is one flag -------------------------------------------------------------------------------------------


@dataclass
class TrainConfigWithSampler(TrainConfig):
    sampler: Literal["ddpm", "ddim"] = flag("ddpm", "sampler of the preview grids")


def test_a_new_field_is_a_new_flag_with_its_choices_and_help():
    parser = build_parser(TrainConfigWithSampler)
    assert flag_table(parser)["sampler"] == ("sampler", ("--sampler",), None, ("ddpm", "ddim"), None, "_StoreAction",
                                             None)
    assert "sampler of the preview grids" in parser.format_help()
    cfg = parse_train_args(["--preset", "sprites", "--sampler", "ddim"], config_class=TrainConfigWithSampler)
    assert (cfg.sampler, cfg.model) == ("ddim", "context_unet")
    assert parse_train_args(None, config_class=TrainConfigWithSampler).sampler == "ddpm"
    with pytest.raises(SystemExit):
        parse_train_args(["--sampler", "euler"], config_class=TrainConfigWithSampler)
    with pytest.raises(TrainConfigError, match="sampler='euler' is not one of ddpm, ddim"):
        check_config(TrainConfigWithSampler(sampler="euler"))


def test_a_field_type_without_a_flag_kind_is_refused():
    with pytest.raises(TypeError, match="no command-line flag"):
        flag_kwargs(dict)


# --- presets and the rules on combinations ---------------------------------------------------------------------------


def test_preset_values_the_flags_make_moot_are_dropped_with_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="hf_sprites.training.config")
    cfg = parse_train_args(["--preset", "sprites_context", "--no-conditional"])
    check_config(cfg)  # still trains: unconditionally
    assert (cfg.conditional, cfg.cond_drop_prob, cfg.guidance_scale) == (False, 0.0, 1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "Preset 'sprites_context' sets cond_drop_prob=0.1, which needs a conditional ContextUnet (it drops the context "
        "for classifier-free guidance); the given flags rule that out, so cond_drop_prob=0.0 is used."]

    caplog.clear()
    cfg = parse_train_args(["--model", "unet2d", "--block_out_channels", "32", "32"])  # the default preset's model
    assert (cfg.preset, cfg.cond_drop_prob, cfg.guidance_scale) == ("default", 0.0, 1.0)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "Preset 'default' sets cond_drop_prob=0.1", "Preset 'default' sets guidance_scale=3.0"]


def test_a_preset_value_that_still_applies_is_kept_without_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="hf_sprites.training.config")
    cfg = parse_train_args(["--preset", "sprites_context"])
    assert (cfg.conditional, cfg.cond_drop_prob) == (True, 0.1) and not caplog.records


@pytest.mark.parametrize("flags, problem", [
    (["--no-conditional", "--cond_drop_prob", "0.1"], "--cond_drop_prob 0.1 needs a conditional ContextUnet"),
    (["--preset", "sprites", "--cond_drop_prob", "0.1"], "--cond_drop_prob 0.1 needs a conditional ContextUnet"),
    (["--cond_drop_prob", "0", "--guidance_scale", "3"], "--guidance_scale 3.0 needs a model trained with context"),
    (["--class_column", "label", "--no-conditional"], "--class_column label needs training on labels"),
    (["--torch_compile_mode", "reduce-overhead"], "--torch_compile_mode reduce-overhead needs --torch_compile"),
    (["--preset", "fashion_mnist", "--block_norm", "group"], "--block_norm group needs --model context_unet"),
    (["--preset", "sprites", "--balance_classes"], "--balance_classes needs training on labels (it draws by class)"),
    (["--cond_drop_prob", "1"], "--cond_drop_prob must be in [0, 1)"),
    (["--model", "basic_unet"], "BasicUNet ignores labels"),
    (["--resolution", "2"], "use at least 4 pixels"),
])
def test_a_conflicting_value_given_on_the_command_line_raises(flags, problem):
    with pytest.raises(TrainConfigError, match=re.escape(problem)):
        check_config(parse_train_args(flags))


def test_a_class_column_turns_labels_on_unless_told_otherwise():
    assert parse_train_args(["--dataset_name", "a/b", "--class_column", "label"]).conditional is True
    assert parse_train_args(["--dataset_name", "a/b"]).conditional is False


def test_the_block_norm_flag_offers_exactly_the_norms_context_unet_builds():
    import typing

    from hf_sprites.models.context_unet import BLOCK_NORMS

    assert typing.get_args(typing.get_type_hints(TrainConfig)["block_norm"]) == BLOCK_NORMS
