"""`evaluate`: sample a trained pipeline and score it against a reference split (FID, KID, accuracy).

With the default offline "domain" features, a small classifier is trained on the reference split's
own labels (cached on disk, see `classifier_cache`) and its penultimate layer is the feature space.
For conditional pipelines the same classifier measures class-conditional accuracy.

Example:
    >>> import torch
    >>> from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
    >>> from hf_sprites.evaluation import ClassifierRecipe, evaluate
    >>> pipe = SpritePipeline(ContextUnet(sample_size=8, in_channels=1, out_channels=1, n_feat=8, n_cfeat=10), SpriteScheduler())
    >>> result = evaluate(pipe, reference=None, num_samples=40, num_inference_steps=2, sampler="ddim",
    ...                   classifier_recipe=ClassifierRecipe(epochs=1, feature_dim=16))  # embedded 8x8 digits
    >>> sorted(k for k in result if k in ("fid", "kid_mean", "class_accuracy"))
    ['class_accuracy', 'fid', 'kid_mean']
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..pipelines.sprite_pipeline import check_guidance_interval
from .accuracy import FID_LABEL_MIXES, balanced_class_labels, class_conditional_accuracy, reference_class_labels
from .classifier_cache import load_or_train_domain_classifier
from .domain_classifier import ClassifierRecipe, class_indices
from .features import DomainFeatures, InceptionFeatures
from .fid import fid_min_samples, frechet_distance, kernel_distance
from .sampling import as_sprite_pipeline, default_steps, generate_samples, swap_sampler


def load_reference(
    reference=None,
    split: str = "train",
    resolution: int = 16,
    channels: int = 3,
    interpolation: str = "nearest",
    background=(255, 255, 255),
    image_column: str | None = None,
    class_column: str | None = None,
    max_items: int | None = None,
):
    """Reference images (N, C, R, R) in [-1, 1], labels (or None) and the `ImageSource`.

    `reference` is an `ImageSource`, a local folder/file path, a Hub dataset name, or None for the
    embedded default dataset of `hf_sprites.data.load_images`.
    """
    from hf_sprites.data import ImageSource, build_transform, load_images, to_tensors

    if isinstance(reference, ImageSource):
        source = reference
    else:
        local = reference is not None and Path(reference).exists()
        source = load_images(
            dataset_name=None if local else reference, train_data_dir=str(reference) if local else None,
            split=split, image_column=image_column, class_column=class_column,
        )
    transform = build_transform(resolution, channels, interpolation=interpolation, background=background)
    images, labels = to_tensors(source, transform, max_items=max_items)
    return images, labels, source


def check_image_sets(generated: torch.Tensor, reference: torch.Tensor) -> None:
    """Both sets must be float (N, C, H, W) with the same C, H, W."""
    for name, images in (("generated", generated), ("reference", reference)):
        if not torch.is_tensor(images) or images.dim() != 4:
            raise ValueError(f"{name} images must be a float tensor (N, C, H, W) in [-1, 1].")
    if generated.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"generated images are {tuple(generated.shape[1:])} (C, H, W) but reference images are "
            f"{tuple(reference.shape[1:])}: build the reference at the model's resolution and channels."
        )


def compare_images(generated, reference, extractor, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """FID and KID of `generated` against `reference` images in the feature space of `extractor`."""
    check_image_sets(generated, reference)
    check_sample_counts(len(generated), len(reference), extractor.feature_dim)
    gen_features, ref_features = extractor(generated), extractor(reference)
    kid_mean, kid_std = kernel_distance(gen_features, ref_features, kid_subsets, kid_subset_size, seed)
    return {"fid": frechet_distance(gen_features, ref_features), "kid_mean": kid_mean, "kid_std": kid_std}


def check_sample_counts(num_samples: int, num_reference: int, feature_dim: int) -> None:
    """FID needs more samples than feature dimensions in both sets; say how to fix it otherwise."""
    need = fid_min_samples(feature_dim)
    if num_samples < need:
        raise ValueError(
            f"num_samples={num_samples} is too few for FID with {feature_dim}-dimensional features (need >= {need}): "
            f"use --num_samples {need} or more (several times the feature dimension is better), or fewer feature "
            "dimensions (ClassifierRecipe(feature_dim=...))."
        )
    if num_reference < need:
        raise ValueError(
            f"The reference has {num_reference} images, too few for FID with {feature_dim}-dimensional features "
            f"(need >= {need}): use a larger split (e.g. train) or a smaller feature_dim."
        )


def _unet_geometry(unet) -> tuple[int, int]:
    size = unet.config.sample_size
    size = size if isinstance(size, int) else int(size[0])
    return size, int(unet.config.in_channels)


def _build_extractor(features, ref_images, ref_labels, num_classes, recipe, cache_dir):
    """(extractor, classifier or None) for "domain" or a ready FeatureExtractor object."""
    if features == "domain":
        if ref_labels is None:
            raise ValueError(
                "Domain features need a labelled reference (a label/class column) to train the classifier; "
                "pass a labelled dataset (and --class_column), or use features='inception' where its weights exist."
            )
        classifier = load_or_train_domain_classifier(ref_images, ref_labels, recipe, num_classes, cache_dir)
        return DomainFeatures(classifier), classifier
    if callable(features) and hasattr(features, "feature_dim"):
        return features, None
    raise ValueError(f"features must be 'domain', 'inception' or a FeatureExtractor, got {features!r}.")


def _check_arguments(num_samples: int, batch_size: int, features, recipe: ClassifierRecipe, fid_labels: str) -> None:
    if fid_labels not in FID_LABEL_MIXES:
        raise ValueError(f"fid_labels must be one of {FID_LABEL_MIXES}, got {fid_labels!r}.")
    if num_samples < 2 or batch_size < 1:
        raise ValueError(f"num_samples must be >= 2 and batch_size >= 1, got {num_samples} and {batch_size}.")
    if isinstance(features, str) and features not in ("domain", "inception"):
        raise ValueError(f"features must be 'domain', 'inception' or a FeatureExtractor, got {features!r}.")
    dim = recipe.feature_dim if features == "domain" else getattr(features, "feature_dim", 2048)
    if num_samples < fid_min_samples(dim):
        check_sample_counts(num_samples, fid_min_samples(dim), dim)


def _check_classes(conditional: bool, pipe, source, guidance_scale: float) -> None:
    if not conditional and guidance_scale != 1.0:
        raise ValueError("guidance_scale != 1 needs class-conditional sampling; drop --unconditional or the guidance.")
    if conditional and pipe.num_classes != source.num_classes:
        raise ValueError(
            f"The pipeline takes {pipe.num_classes} classes but the reference {source.source} has "
            f"{source.num_classes}: evaluate against the labelled dataset the model was trained on (same --class_column)."
        )


def evaluate(
    pipeline_or_path,
    reference=None,
    split: str = "train",
    num_samples: int = 500,
    num_inference_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 250,
    features="domain",
    sampler: str = "ddpm",
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    conditional: bool | None = None,
    classifier_recipe: ClassifierRecipe | None = None,
    cache_dir: str | os.PathLike | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    max_reference: int | None = None,
    interpolation: str = "nearest",
    background=(255, 255, 255),
    image_column: str | None = None,
    class_column: str | None = None,
    device=None,
    fid_labels: str = "reference",
) -> dict:
    """Sample `pipeline_or_path` and score the samples against `reference`/`split`.

    Args:
        pipeline_or_path: a pipeline object, or a saved pipeline folder (see `as_sprite_pipeline`).
        reference, split: the reference images (see `load_reference`); default the embedded dataset.
        num_samples: generated images (must exceed the feature dimension); batch_size: images per call.
        num_inference_steps: default: all steps for "ddpm", 25 for "ddim", 20 for "dpm".
        seed: seeds sampling (and, through the recipe, the classifier); same seed, same numbers.
        features: "domain" (offline), "inception" (needs torch-fidelity and its weights) or an extractor.
        sampler: "ddpm" (the pipeline's own scheduler), "ddim" or "dpm".
        guidance_scale, guidance_interval: classifier-free guidance and the fractions of the steps it applies to
            (see `SpritePipeline.__call__`).
        conditional: sample with class labels; default: True for SpritePipeline folders/objects. Class accuracy asks
            for every class equally often; FID and KID ask for classes as `fid_labels` says.
        fid_labels: "reference" (default): the FID/KID samples ask for the classes in the reference's own
            proportions, so a perfect model scores the real-vs-real floor; "balanced": every class equally often
            (what hf_sprites did before; on imbalanced data it leaves a gap that no model closes). On a balanced
            reference both are the same samples.
        classifier_recipe, cache_dir: domain classifier hyperparameters and cache root.
        kid_subsets, kid_subset_size: KID averaging.
        max_reference: cap on reference images; interpolation/background/columns: reference transform.
        device: where to sample (default CUDA when available).

    Returns:
        dict with fid, kid_mean, kid_std, class_accuracy (conditional only) and the settings used.
    """
    recipe = classifier_recipe or ClassifierRecipe()
    _check_arguments(num_samples, batch_size, features, recipe, fid_labels)
    guidance_interval = check_guidance_interval(guidance_interval)
    if features == "inception":
        features = InceptionFeatures()  # fails here, before any sampling, when it is not available
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe, saved_conditional = as_sprite_pipeline(pipeline_or_path, device)
    conditional = saved_conditional if conditional is None else conditional
    swap_sampler(pipe, sampler)
    steps = num_inference_steps or default_steps(pipe, sampler)
    resolution, channels = _unet_geometry(pipe.unet)
    ref_images, ref_labels, source = load_reference(
        reference, split, resolution, channels, interpolation, background, image_column, class_column, max_reference
    )
    _check_classes(conditional, pipe, source, guidance_scale)
    extractor, classifier = _build_extractor(features, ref_images, ref_labels, source.num_classes, recipe, cache_dir)
    check_sample_counts(num_samples, len(ref_images), extractor.feature_dim)
    if conditional and classifier is None:
        raise ValueError("Class-conditional accuracy needs the domain classifier: use features='domain' or conditional=False.")
    labels = balanced_class_labels(num_samples, classifier.config.num_classes) if conditional else None
    guidance = (guidance_scale, guidance_interval)
    samples = generate_samples(pipe, num_samples, batch_size, steps, seed, labels, *guidance)
    fid_samples, fid_class_counts = samples, None
    if labels is not None and fid_labels == "reference":
        ref_classes = class_indices(ref_labels, len(ref_images))  # one-hot reference labels (course .npy) too
        fid_label_list = reference_class_labels(num_samples, torch.bincount(ref_classes, minlength=source.num_classes))
        fid_class_counts = torch.bincount(fid_label_list, minlength=source.num_classes).tolist()
        if not torch.equal(fid_label_list, labels):
            fid_samples = generate_samples(pipe, num_samples, batch_size, steps, seed, fid_label_list, *guidance)
    result = compare_images(fid_samples, ref_images, extractor, kid_subsets, kid_subset_size, seed)
    if labels is not None:
        predicted = classifier.predict(samples)
        result["class_accuracy"] = class_conditional_accuracy(predicted, labels, classifier.config.num_classes)
    result.update(
        num_samples=num_samples, num_inference_steps=steps, sampler=sampler, seed=seed, features=extractor.name,
        feature_dim=extractor.feature_dim, reference=source.source, split=split, num_reference=len(ref_images),
        conditional=bool(labels is not None), guidance_scale=guidance_scale,
    )
    if guidance_interval != (0.0, 1.0):
        result["guidance_interval"] = list(guidance_interval)
    if labels is not None:
        result.update(fid_labels=fid_labels, fid_class_counts=fid_class_counts)
    if classifier is not None:
        result["classifier_train_accuracy"] = classifier.train_accuracy
        result["classifier_trained_with"] = getattr(classifier, "trained_with", None)
    return result

