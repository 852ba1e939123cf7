"""Write the trained model as a diffusers pipeline folder, with its model card, and push it.

Unconditional runs save a stock `DDPMPipeline` (`DDPMPipeline.from_pretrained(folder)` after
`import hf_sprites`); runs trained on labels save a `SpritePipeline`. The pipeline is saved into a
temporary folder first and then moved into `output_dir` piece by piece with `os.replace`,
`model_index.json` last, so the folder never holds a half-written pipeline.

Example:
    >>> from hf_sprites.training.output import pipeline_class
    >>> pipeline_class(conditional=False).__name__
    'DDPMPipeline'
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from diffusers import DDPMPipeline

from hf_sprites import SpritePipeline
from hf_sprites.hub.card import write_model_card
from hf_sprites.hub.push import push_folder

logger = logging.getLogger(__name__)

PIPELINE_ENTRIES = ("unet", "scheduler")
INDEX_FILE = "model_index.json"


def pipeline_class(conditional: bool):
    return SpritePipeline if conditional else DDPMPipeline


def _replace_entry(source: Path, target: Path) -> None:
    """Move `source` over `target` (a file or a folder), leaving `target` complete at every moment a reader looks."""
    if source.is_dir() and target.exists():
        trash = target.with_name(f".{target.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(target, trash)
        os.replace(source, target)
        shutil.rmtree(trash)
    else:
        os.replace(source, target)


def save_pipeline(unet, scheduler, output_dir, conditional: bool) -> Path:
    """Save `unet` + `scheduler` as a pipeline folder in `output_dir` (atomically, see the module docstring)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pipe = pipeline_class(conditional)(unet=unet, scheduler=scheduler)
    tmp = Path(tempfile.mkdtemp(dir=output_dir, prefix=".pipeline-"))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        for name in PIPELINE_ENTRIES:
            _replace_entry(tmp / name, output_dir / name)
        os.replace(tmp / INDEX_FILE, output_dir / INDEX_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output_dir


def write_card(cfg, output_dir, source, sample_image: Optional[Path]) -> Optional[Path]:
    """The model card (README.md) through `hf_sprites.hub.card.write_model_card`, without secrets."""
    return write_model_card(
        output_dir,
        repo_id=cfg.hub_model_id,
        dataset_name=cfg.dataset_name or cfg.train_data_dir or "scikit-learn digits (embedded)",
        hyperparameters=card_hyperparameters(cfg),
        sample_image=None if sample_image is None else Path(sample_image).resolve(),
        conditional=cfg.conditional,
        class_names=source.class_names if cfg.conditional else None,
        extra_tags=("hf-sprites-train", cfg.model),
    )


BOOKKEEPING = ("output_dir", "overwrite_output_dir", "cache_dir", "logging_dir", "resume_from_checkpoint", "push_to_hub",
               "hub_private_repo", "dataloader_num_workers", "logger", "logging_steps", "save_gif", "cache_on_device",
               "save_images_epochs", "save_model_epochs", "checkpointing_steps", "checkpoints_total_limit")
# settings that only mean something for one model kind
MODEL_ONLY = {
    "context_unet": ("n_feat", "n_cfeat"),
    "unet2d": ("block_out_channels", "down_block_types", "up_block_types", "layers_per_block"),
    "basic_unet": ("noise_distribution", "data_range"),
}


def card_hyperparameters(cfg) -> dict:
    """The settings shown in the card: the public config minus local paths, bookkeeping and other models' knobs."""
    hidden = set(BOOKKEEPING)
    for kind, names in MODEL_ONLY.items():
        hidden.update(names if kind != cfg.model else ())
    if not cfg.conditional:
        hidden.add("cond_drop_prob")
    if not cfg.use_ema:
        hidden.update(("ema_inv_gamma", "ema_power", "ema_max_decay"))
    return {k: v for k, v in cfg.public_dict().items() if k not in hidden and v is not None}


def push(cfg, output_dir, repo_id: str, token: Optional[str]) -> None:
    """Upload the folder with `hf_sprites.hub.push.push_folder` (call on the main process only)."""
    push_folder(output_dir, repo_id, token=token, private=cfg.hub_private_repo,
                commit_message="Upload pipeline trained with hf_sprites")
