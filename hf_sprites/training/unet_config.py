"""`--model_config_name_or_path`: a UNet2DModel config (JSON file, folder, Hub id) as the architecture of a run.

As in diffusers' `train_unconditional.py`, the file replaces the block flags (`--block_out_channels`,
`--down_block_types`, ...); the run fills in what the file leaves out (`sample_size`, the channels, the number of
classes), and `hf_sprites.training.config.check_model_config` checks that what it sets agrees with the run.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "unet.json"
    >>> _ = path.write_text(json.dumps({"_class_name": "UNet2DModel", "block_out_channels": [32, 64],
    ...     "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"]}))
    >>> load_model_config(str(path))["block_out_channels"]
    [32, 64]
"""

from __future__ import annotations

import inspect
from pathlib import Path

FIX = "pass a UNet2DModel config JSON (e.g. unet/config.json of a saved pipeline), its folder, or a Hub model id"


def load_model_config(name_or_path: str) -> dict:
    """The UNet2DModel config that `name_or_path` names; a `ValueError` saying what is wrong with it otherwise."""
    from diffusers import UNet2DModel

    what = f"--model_config_name_or_path {name_or_path}"
    local = Path(name_or_path).expanduser()
    if not local.exists() and (name_or_path.endswith(".json") or name_or_path.startswith((".", "/", "~"))):
        raise ValueError(f"{what} does not exist; {FIX}")
    try:
        values = UNet2DModel.load_config(str(local) if local.exists() else name_or_path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{what} cannot be read ({' '.join(str(err).split())[:300]}); {FIX}") from None
    known = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(key for key in values if not key.startswith("_") and key not in known)
    if values.get("_class_name", "UNet2DModel") != "UNet2DModel" or unknown:
        named = values.get("_class_name") or f"a model with keys {unknown}"
        raise ValueError(f"{what} is the config of {named}, not of a UNet2DModel; {FIX}")
    return values


def block_count(name_or_path: str) -> int:
    """How many resolution levels the file's UNet2DModel has (its `block_out_channels`, or the class default)."""
    from diffusers import UNet2DModel

    default = inspect.signature(UNet2DModel.__init__).parameters["block_out_channels"].default
    return len(load_model_config(name_or_path).get("block_out_channels") or default)


def build_from_config(name_or_path: str, image_size: dict, num_classes):
    """A fresh UNet2DModel from the file, with the run's size, channels and classes filled in."""
    from diffusers import UNet2DModel

    values = {**load_model_config(name_or_path), **image_size, "num_class_embeds": num_classes}
    try:
        return UNet2DModel.from_config(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"--model_config_name_or_path {name_or_path} does not build a UNet2DModel ({err}); fix the "
                         "file") from None
