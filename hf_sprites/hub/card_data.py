# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""What a model card may say about a run: Hub front matter (license, widget, datasets, model-index) and the record.

The record is `training_config.json` beside the card: the inputs the card was rendered from (data, hyperparameters,
classes, license, evaluation), so `hf-sprites push` and `hf-sprites evaluate --update_card` can render it again. Both
the card and the record are shared with the model, so neither holds secrets nor local paths (`shareable_value`).

Example:
    >>> check_license("apache-2.0")
    'apache-2.0'
    >>> shareable_value("/home/me/data/crawl-sprites") is None, shareable_value("huggan/smithsonian_butterflies_subset")
    (True, 'huggan/smithsonian_butterflies_subset')
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..atomic import atomic_write_text

logger = logging.getLogger(__name__)

RECORD_FILE = "training_config.json"
LEGACY_CARD_KEY = "hf_sprites"  # older cards kept the record in their front matter under this key
_SECRET_KEY = re.compile(r"token|secret|password|passwd|api_?key|credential", re.IGNORECASE)
_TOKEN_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{16,}")
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
METRICS = (  # (result key, model-index metric type, what the card calls it)
    ("fid", "fid", "FID"),
    ("kid_mean", "kid", "KID"),
    ("class_accuracy", "accuracy", "class accuracy"),  # the mean over classes of balanced conditional samples
)


def check_license(license: str) -> str:
    """`license` if it has the form of a Hub license id (`apache-2.0`, `mit`, `cc-by-4.0`, `other`, ...)."""
    if not isinstance(license, str) or not _LICENSE_ID.match(license):
        raise ValueError(f"license {license!r} is not a Hub license id; use a lower-case id such as apache-2.0, mit, "
                         "cc-by-4.0, openrail or other (https://huggingface.co/docs/hub/repositories-licenses)")
    return license


def is_repo_id(text: str) -> bool:
    """Whether `text` has the form of a Hub repo id (`name` or `namespace/name`)."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def is_local_path(value: Any) -> bool:
    """True for a string that names a place on this machine: absolute, `~`-relative, or an existing relative path."""
    if not isinstance(value, str) or not value or not ("/" in value or os.sep in value or value.startswith("~")):
        return False
    return os.path.isabs(os.path.expanduser(value)) or value.startswith(".") or os.path.exists(value)


def plain_value(value: Any) -> Any:
    """`value` as YAML/JSON-safe builtins (tuples become lists, other objects their `str`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain_value(v) for v in value]
    return str(value)


def holds_private(value: Any) -> bool:
    """True when `value` (or anything in it) is a local path or looks like a Hugging Face token."""
    if isinstance(value, dict):
        return any(holds_private(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return any(holds_private(v) for v in value)
    return isinstance(value, str) and (is_local_path(value) or bool(_TOKEN_VALUE.search(value)))


def shareable_value(value: Any) -> Any:
    """`value` as plain builtins, or None when it holds a local path or a token."""
    value = plain_value(value)
    return None if holds_private(value) else value


def safe_hyperparameters(hyperparameters: dict | None) -> dict[str, Any]:
    """Plain, YAML-safe copy of `hyperparameters` without secrets and local paths.

    Keys that name a token/secret/password, values that look like a Hugging Face token (`hf_...`) and values that
    are paths on this machine are left out.
    """
    kept = {}
    for key, value in (hyperparameters or {}).items():
        value = plain_value(value)
        if _SECRET_KEY.search(str(key)) or holds_private(value):
            logger.debug("Model card: leaving out hyperparameter %r (a secret or a local path).", key)
            continue
        kept[str(key)] = value
    return kept


def hub_dataset(name: str | None) -> str | None:
    """`name` when it is a Hub dataset id (for the card's `datasets:`), else None."""
    return name if name and not is_local_path(name) and not os.path.exists(name) and is_repo_id(name) else None


def dataset_label(name: str | None) -> str | None:
    """The training data as a card names it: a Hub id as it is, local data by its folder name only (never its path).

    >>> dataset_label("/home/me/data/crawl-sprites")
    'local data (crawl-sprites)'
    """
    if not name or hub_dataset(name):
        return name or None
    if is_local_path(name) or os.path.exists(name):
        return f"local data ({Path(os.path.expanduser(name)).resolve().name})"
    return None if holds_private(name) else name


def dataset_text(name: str | None) -> str:
    """The card's "Data:" line: a link for a Hub dataset, else `dataset_label`."""
    if hub_dataset(name):
        return f"[{name}](https://huggingface.co/datasets/{name})"
    return dataset_label(name) or "not recorded."


def widget(sample_image: str | None, conditional: bool, class_names: list | None) -> list[dict] | None:
    """The card's `widget:` entry showing the sample grid (the Hub displays it on the model page)."""
    if not sample_image:
        return None
    text = "samples, one column per class" + (f": {', '.join(map(str, class_names))}" if class_names else "")
    return [{"text": text if conditional else "unconditional samples", "output": {"url": sample_image}}]


# --- evaluation ----------------------------------------------------------------------------------------------------


def evaluator_name(evaluation: dict) -> str:
    """The feature space the scores were measured in, said plainly (domain features are not Inception's)."""
    if evaluation.get("features") == "domain":
        return (f"hf_sprites domain features ({evaluation.get('feature_dim')}-d penultimate layer of a small "
                "classifier trained on the reference labels; not Inception-v3, so not comparable to published FIDs)")
    if evaluation.get("features") == "inception":
        return "Inception-v3 pool features (torch-fidelity weights)"
    return f"{evaluation.get('features')} features"


def evaluation_record(result: dict, dataset: str | None) -> dict:
    """The shareable part of an `hf_sprites.evaluation.evaluate` result, with the reference data named by `dataset`."""
    keys = ("fid", "kid_mean", "kid_std", "class_accuracy", "num_samples", "num_inference_steps", "sampler", "seed",
            "features", "feature_dim", "split", "num_reference", "guidance_scale", "guidance_interval", "fid_labels")
    record = {key: result[key] for key in keys if result.get(key) is not None}
    if isinstance(record.get("class_accuracy"), dict):  # evaluate's {"mean", "per_class", "overall"}
        record["class_accuracy_per_class"] = record["class_accuracy"].get("per_class")
        record["class_accuracy"] = record["class_accuracy"]["mean"]
    return {**record, "dataset": dataset_label(dataset)}


def eval_results(evaluation: dict | None) -> list[EvalResult] | None:
    """The `model-index` results of a recorded evaluation (FID, KID, class accuracy), or None."""
    if not evaluation:
        return None
    dataset = evaluation.get("dataset") or "local data"
    config = (f"hf-sprites evaluate: {evaluator_name(evaluation)}; {evaluation.get('num_samples')} samples, sampler "
              f"{evaluation.get('sampler')}, {evaluation.get('num_inference_steps')} steps")
    return [
        EvalResult(task_type="unconditional-image-generation", dataset_type=hub_dataset(dataset) or "local",
                   dataset_name=dataset, dataset_split=evaluation.get("split"), metric_type=metric,
                   metric_name=f"{label} ({'domain' if evaluation.get('features') == 'domain' else 'inception'} features)",
                   metric_value=round(float(evaluation[key]), 6), metric_config=config)
        for key, metric, label in METRICS if key in evaluation
    ]  # fmt: skip


def evaluation_rows(evaluation: dict | None) -> list[tuple[str, str]]:
    """(metric, value) rows of the card's evaluation table."""
    if not evaluation:
        return []
    rows = [(label, f"{float(evaluation[key]):.4g}") for key, _, label in METRICS if key in evaluation]
    if "kid_std" in evaluation and "kid_mean" in evaluation:
        rows[[r[0] for r in rows].index("KID")] = ("KID", f"{evaluation['kid_mean']:.4g} ± {evaluation['kid_std']:.2g}")
    return rows


# --- the record beside the card ------------------------------------------------------------------------------------


def write_record(folder: str | os.PathLike, inputs: dict) -> Path:
    """Write the card's inputs to `folder/training_config.json` (atomically)."""
    return atomic_write_text(Path(folder) / RECORD_FILE, json.dumps(inputs, indent=2, sort_keys=True) + "\n")


def read_record(folder: str | os.PathLike) -> dict | None:
    """The card inputs recorded in `folder` (its `training_config.json`, or an older card's front matter), or None."""
    folder = Path(folder)
    if (folder / RECORD_FILE).is_file():
        return json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    if (folder / "README.md").is_file():
        legacy = ModelCard.load(folder / "README.md").data.to_dict().get(LEGACY_CARD_KEY)
        return legacy if isinstance(legacy, dict) else None
    return None
