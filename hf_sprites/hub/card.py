# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Model cards for pipeline folders: `model_card_template.md` rendered through huggingface_hub's `ModelCard`.

The front matter holds Hub metadata only (library, license, tags, datasets, widget, model-index); the inputs of a
rendering are kept beside the card in `training_config.json` (`card_data`), so `hf-sprites push` can render the card
again for the repository it uploads to (the usage snippet names the repository) and `hf-sprites evaluate
--update_card` can add its scores. The usage snippet matches the folder: a folder of diffusers classes only loads with
plain diffusers; one with hf_sprites classes needs the package locally and remote code from the Hub.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import diffusers
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import validate_repo_id

from ..atomic import atomic_copy, atomic_write_text
from .card_data import (check_license, dataset_label, dataset_text, eval_results, evaluation_record, evaluation_rows,
                        evaluator_name, hub_dataset, is_repo_id, read_record, safe_hyperparameters, widget,
                        write_record)
from .remote_code import code_file_names

logger = logging.getLogger(__name__)

BASE_TAGS = ("pytorch", "diffusers", "unconditional-image-generation", "diffusion-models-class", "hf-sprites")
CONDITIONAL_TAGS = ("class-conditional", "classifier-free-guidance")
DEFAULT_LICENSE = "apache-2.0"

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
_UNET_SETTINGS = ("sample_size", "in_channels", "n_feat", "block_norm", "block_out_channels", "n_cfeat",
                  "num_class_embeds")
_SCHEDULER_SETTINGS = ("num_train_timesteps", "beta_schedule", "prediction_type", "noise_distribution")

__all__ = ["is_repo_id", "record_evaluation", "refresh_model_card", "require_card", "write_model_card"]


def template_path() -> Path:
    """The card template shipped in the package (`hf_sprites/templates/model_card_template.md`)."""
    path = Path(__file__).resolve().parent.parent / "templates" / "model_card_template.md"
    if not path.is_file():
        raise FileNotFoundError(
            f"The model card template is missing at {path}. Reinstall hf_sprites (`pip install -e .` from a checkout "
            "or `pip install hf-sprites`)."
        )
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: a model card describes a saved pipeline folder. Save the pipeline first "
            "(`pipeline.save_pretrained(folder)`), then write the card."
        ) from None


def _class_of(entry: Any) -> str:
    """`"DDPMPipeline"`, `["diffusers", "UNet2DModel"]` or `["context_unet", "ContextUnet"]` -> the class name."""
    return entry[-1] if isinstance(entry, (list, tuple)) else str(entry)


def folder_facts(folder: str | os.PathLike) -> dict[str, Any]:
    """What the card says about a pipeline folder, read from its `model_index.json` and component configs."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    unet = _read_json(folder / "unet" / "config.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    num_classes = unet.get("n_cfeat") or unet.get("num_class_embeds")
    return {
        "pipeline_class": _class_of(index.get("_class_name")),
        "unet_class": _class_of(index["unet"]),
        "scheduler_class": _class_of(index["scheduler"]),
        "sample_size": unet.get("sample_size"),
        "in_channels": unet.get("in_channels"),
        "num_classes": num_classes,
        "num_train_timesteps": scheduler.get("num_train_timesteps", 1000),
        "unet_settings": _settings(unet, _UNET_SETTINGS),
        "scheduler_settings": _settings(scheduler, _SCHEDULER_SETTINGS),
    }


def _settings(config: dict, keys: Iterable[str]) -> str:
    return ", ".join(f"`{k}={json.dumps(config[k])}`" for k in keys if config.get(k) is not None)


def _place_sample_image(folder: Path, sample_image: str | os.PathLike | None) -> str | None:
    """Path of the sample image relative to `folder`; an image from elsewhere is copied in first."""
    if sample_image is None:
        return None
    image = Path(sample_image)
    image = image if image.is_absolute() else folder / image
    if not image.is_file():
        raise FileNotFoundError(f"sample_image {sample_image} does not exist; pass the path of the saved sample grid.")
    try:
        return image.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        atomic_copy(image, folder / image.name)
        return image.name


def _call_snippet(facts: dict, conditional: bool) -> str:
    steps = facts["num_train_timesteps"]
    labels = ""
    if conditional:
        n = facts["num_classes"] or 1
        labels = f"class_labels={[i % n for i in range(4)]}, "
    return (
        f"images = pipe(batch_size=4, {labels}num_inference_steps={steps}, generator=torch.manual_seed(0)).images\n"
        'images[0].save("sample.png")'
    )


def _local_imports(facts: dict) -> str:
    pipeline_class = facts["pipeline_class"]
    if not hasattr(diffusers, pipeline_class):
        return f"from hf_sprites import {pipeline_class}"
    if not _code_files(facts):
        return f"from diffusers import {pipeline_class}"
    register = "import hf_sprites  # lets diffusers find the hf_sprites classes that model_index.json names"
    return f"{register}\nfrom diffusers import {pipeline_class}"


def _summary(facts: dict, conditional: bool) -> str:
    kind = "A class-conditional" if conditional else "An unconditional"
    size = facts["sample_size"]
    size_text = f"{size}x{size}" if isinstance(size, int) else f"{size}"
    return (
        f"{kind} diffusion model for {size_text} images ({facts['in_channels']} channels): a `{facts['unet_class']}` "
        f"denoiser with the `{facts['scheduler_class']}` noise schedule ({facts['num_train_timesteps']} training steps), "
        f"sampled with `{facts['pipeline_class']}`."
    )


def _class_table(class_names: list | None, num_classes: int | None) -> list[tuple[int, str]]:
    if class_names:
        return list(enumerate(str(name) for name in class_names))
    return [(i, f"class {i}") for i in range(num_classes or 0)]


def write_model_card(
    folder: str | os.PathLike,
    *,
    repo_id: str | None = None,
    dataset_name: str | None = None,
    hyperparameters: dict | None = None,
    sample_image: str | os.PathLike | None = None,
    conditional: bool = False,
    class_names: list[str] | None = None,
    extra_tags: Iterable[str] = (),
    license: str = DEFAULT_LICENSE,
    evaluation: dict | None = None,
    local_path: str | os.PathLike | None = None,
    training_run: dict | None = None,
) -> Path:
    """Render `model_card_template.md` into `folder/README.md`, record its inputs in `folder/training_config.json`.

    The card has Hub metadata (library, license, tags, datasets, pipeline tag, a widget showing the sample grid, and
    `model-index` results when `evaluation` holds a recorded `hf-sprites evaluate` result), a usage snippet that runs
    as written (for `repo_id` when given, else for the local folder; plain diffusers when every class is a diffusers
    class), the model and schedule, the classes, the training hyperparameters (secrets and local paths are left out)
    and the sample grid. `dataset_name` is a Hub dataset id or local data, which the card names by folder name only.

    `training_run` is the run that made the weights, as training records it: `steps`, and for a budgeted run
    `time_budget_minutes`, `planned_steps`, `step_seconds` and `stopped_by_budget_at` (and `replanned_at`,
    `initial_planned_steps`, `initial_step_seconds` when the run planned its rest again, `replanned_again_at` when
    it did twice); and `cpu_threads`.

    `local_path` is where the folder will live when the card is written into a staging folder that is renamed
    afterwards (atomic writes); the local usage snippet names it. Defaults to `folder`.

    Example:

    ```py
    >>> from hf_sprites.hub.card import write_model_card
    >>> write_model_card("outputs/sprites", dataset_name="tiny/sprites", hyperparameters={"learning_rate": 1e-3},
    ...                  sample_image="samples.png")  # doctest: +SKIP
    PosixPath('outputs/sprites/README.md')
    ```
    """
    folder = Path(folder)
    shown_path = Path(local_path if local_path is not None else folder).resolve()
    if repo_id is not None:
        validate_repo_id(repo_id)
    check_license(license)
    facts = folder_facts(folder)
    if conditional and hasattr(diffusers, facts["pipeline_class"]):
        raise ValueError(
            f"conditional=True, but the folder holds a {facts['pipeline_class']}, which takes no class labels. Save the "
            "model in a SpritePipeline to sample it by class, or write the card with conditional=False."
        )
    image = _place_sample_image(folder, sample_image)
    inputs = {
        "dataset_name": dataset_label(dataset_name), "hyperparameters": safe_hyperparameters(hyperparameters),
        "sample_image": image, "conditional": bool(conditional),
        "class_names": [str(c) for c in class_names] if class_names else None, "extra_tags": list(extra_tags),
        "license": license, "evaluation": evaluation or None, "training_run": training_run or None,
    }  # fmt: skip
    card = _render(inputs, facts, repo_id=repo_id, model_name=repo_id.split("/")[-1] if repo_id else shown_path.name,
                   folder_path=shown_path.as_posix())
    write_record(folder, inputs)
    return atomic_write_text(folder / "README.md", str(card))


def _render(inputs: dict, facts: dict, *, repo_id: str | None, model_name: str, folder_path: str) -> ModelCard:
    conditional, class_names, image = inputs["conditional"], inputs["class_names"], inputs["sample_image"]
    evaluation = inputs["evaluation"]
    tags = list(dict.fromkeys([*BASE_TAGS, *(CONDITIONAL_TAGS if conditional else ()), *inputs["extra_tags"]]))
    dataset = hub_dataset(inputs["dataset_name"])
    card_data = ModelCardData(
        library_name="diffusers",
        license=inputs["license"],
        tags=tags,
        datasets=[dataset] if dataset else None,
        pipeline_tag="unconditional-image-generation",
        model_name=model_name if evaluation else None,
        eval_results=eval_results(evaluation),
        widget=widget(image, conditional, class_names),
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=model_name,
        repo_id=repo_id,
        folder_path=folder_path,
        local_imports=_local_imports(facts),
        summary=_summary(facts, conditional),
        call_snippet=_call_snippet(facts, conditional),
        code_files="`, `".join(_code_files(facts)),
        class_table=_class_table(class_names, facts["num_classes"]) if conditional else [],
        dataset_text=dataset_text(inputs["dataset_name"]),
        run_text=training_run_text(inputs.get("training_run")),
        hyperparameter_rows=[(k, _cell(v)) for k, v in inputs["hyperparameters"].items()],
        evaluation_rows=evaluation_rows(evaluation),
        evaluator=evaluator_name(evaluation) if evaluation else None,
        sample_image=image,
        conditional=conditional,
        **{k: v for k, v in facts.items() if k not in ("num_classes",)},
    )


def training_run_text(run: dict | None) -> str | None:
    """One sentence on the run behind the weights: its steps, the plan a time budget fixed, and what ended it."""
    if not run:
        return None
    text = f"Run: {run['steps']:,} optimizer steps"
    if run.get("time_budget_minutes") is not None:
        text += f" of the {run['planned_steps']:,} planned for a {run['time_budget_minutes']:g}-minute budget ("
        if run.get("replanned_at") is not None:
            again = f" and at step {run['replanned_again_at']:,}" if run.get("replanned_again_at") is not None else ""
            text += (f"{run['initial_planned_steps']:,} planned from {run['initial_step_seconds']:.3g} s per step timed "
                     f"before training, re-planned at step {run['replanned_at']:,}{again} from the run's own "
                     f"{run['step_seconds']:.3g} s per step)")
        else:
            text += f"the plan was fixed from a measured step time of {run['step_seconds']:.3g} s)"
    if run.get("cpu_threads"):
        text += f", on {run['cpu_threads']} CPU thread(s) per process"
    text += "."
    if run.get("stopped_by_budget_at") is not None:
        text += f" The budget was spent at step {run['stopped_by_budget_at']:,}, which ended the run there."
    return text


def _code_files(facts: dict) -> list[str]:
    return code_file_names(facts["pipeline_class"], facts["unet_class"], facts["scheduler_class"])


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def stored_card_inputs(folder: str | os.PathLike) -> dict | None:
    """The rendering inputs of an hf_sprites card in `folder` (its `training_config.json`); None when there is none."""
    return read_record(folder)


def refresh_model_card(folder: str | os.PathLike, repo_id: str | None = None, license: str | None = None,
                       evaluation: dict | None = None) -> Path:
    """Render the card of `folder` again for `repo_id`, keeping the inputs it was first rendered with.

    `license` and `evaluation` replace the recorded ones when given. A folder without a card gets one from what the
    folder itself tells (no hyperparameters, the first image at its top level as the sample grid). A README.md that
    hf_sprites did not write is left as it is.
    """
    folder = Path(folder)
    inputs = stored_card_inputs(folder)
    if inputs is None and (folder / "README.md").is_file():
        logger.info("Keeping %s: it is not an hf_sprites model card.", folder / "README.md")
        return folder / "README.md"
    if inputs is None:
        facts = folder_facts(folder)
        images = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        conditional = not hasattr(diffusers, facts["pipeline_class"]) and bool(facts["num_classes"])
        inputs = {"conditional": conditional, "sample_image": images[0] if images else None}
    changes = {"license": license, "evaluation": evaluation}
    return write_model_card(folder, repo_id=repo_id, **{**inputs, **{k: v for k, v in changes.items() if v}})


def record_evaluation(folder: str | os.PathLike, result: dict, dataset: str | None = None) -> Path:
    """Add an `hf_sprites.evaluation.evaluate` `result` (against reference data `dataset`) to the card of `folder`.

    The scores go into the card's `model-index` and an evaluation table, named by the features they were measured
    with; the folder must hold an hf_sprites card (train or convert it with hf_sprites first).
    """
    require_card(folder)
    return refresh_model_card(folder, evaluation=evaluation_record(result, dataset))


def require_card(folder: str | os.PathLike) -> None:
    """Raise `FileNotFoundError` unless `folder` holds an hf_sprites model card to add to."""
    if not Path(folder).is_dir() or stored_card_inputs(folder) is None:
        raise FileNotFoundError(f"{folder} is not a folder with an hf_sprites model card (README.md and "
                                "training_config.json, as hf-sprites train writes them); drop --update_card")
