"""Tests for hf_sprites.evaluation: FID/KID numerics, the domain classifier, accuracy, evaluate() and its CLI.

Real-data tests use shared/data/crawl-sprites and are skipped (with the reason) when it is absent; the
numerics and the end-to-end evaluate() tests use generated features and the embedded 8x8 digits.

Measured with the default ClassifierRecipe (width 16, 15 epochs) on crawl-sprites 16x16 (train 2286 /
test 254): test accuracy 0.906-0.909 for seeds 0-2 (train accuracy 0.994-0.995); the stated floor is 0.85.
"""

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
from hf_sprites.evaluation import (
    ClassifierRecipe,
    DomainFeatures,
    InceptionFeatures,
    class_conditional_accuracy,
    compare_images,
    evaluate,
    feature_statistics,
    frechet_distance,
    kernel_distance,
    load_or_train_domain_classifier,
    main,
    reference_class_labels,
    train_domain_classifier,
)

CRAWL = Path(__file__).resolve().parents[2] / "shared" / "data" / "crawl-sprites"
CLASSIFIER_TEST_ACCURACY_FLOOR = 0.85
TINY = ClassifierRecipe(epochs=1, width=8, feature_dim=16)


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


# --- FID / KID numerics ---------------------------------------------------------------------------------------

def test_fid_is_zero_for_identical_sets_and_the_squared_shift_for_translated_ones():
    a = gaussian(400, 8, 0)
    shift = torch.arange(8, dtype=torch.float64) / 4
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fid_matches_the_textbook_formula_with_scipy_sqrtm():
    a = gaussian(300, 6, 1)
    b = gaussian(350, 6, 2) @ torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 1
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_large_for_shifted_ones():
    same_mean, _ = kernel_distance(gaussian(600, 8, 4), gaussian(600, 8, 5), num_subsets=20, subset_size=200)
    far_mean, far_std = kernel_distance(gaussian(600, 8, 4), gaussian(600, 8, 6, shift=2.0), num_subsets=20, subset_size=200)
    assert abs(same_mean) < 0.05
    assert far_mean > 10 and far_mean > 10 * far_std
    again = kernel_distance(gaussian(600, 8, 4), gaussian(600, 8, 6, shift=2.0), num_subsets=20, subset_size=200)
    assert again == (far_mean, far_std)


def test_metric_errors_name_the_problem_and_the_fix():
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance(gaussian(50, 4, 0), gaussian(50, 5, 1))
    with pytest.raises(ValueError, match="--num_samples 9"):
        frechet_distance(gaussian(8, 8, 0), gaussian(50, 8, 1))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((20, 2), float("nan")), gaussian(20, 2, 1))
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(gaussian(20, 2, 0), gaussian(20, 2, 1), subset_size=1)


def test_class_conditional_accuracy_per_class_and_mean():
    result = class_conditional_accuracy(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0]), 4)
    assert result["per_class"] == [0.5, 0.5, 1.0, None]
    assert result["mean"] == pytest.approx(2 / 3)
    assert result["overall"] == pytest.approx(4 / 6)


def test_reference_class_labels_follow_the_proportions_round_robin():
    labels = reference_class_labels(50, [236, 903, 43, 450, 654])  # crawl-sprites' train split
    assert torch.bincount(labels).tolist() == [5, 20, 1, 10, 14]  # largest remainders: food keeps one sample
    assert labels[:5].tolist() == [0, 1, 2, 3, 4] and labels[5:9].tolist() == [0, 1, 3, 4]
    assert torch.equal(reference_class_labels(30, [7, 7, 7]), torch.arange(30) % 3)  # balanced data: the same labels
    for bad in ([], [3, -1], [0, 0]):
        with pytest.raises(ValueError, match="non-negative per-class counts"):
            reference_class_labels(10, bad)


# --- domain classifier -----------------------------------------------------------------------------------------

def two_class_images(n=120, seed=0):
    """Class 0: dark images, class 1: bright ones (learnable in one epoch)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 8, 8, generator=g) * 0.5 - 0.9) + labels[:, None, None, None] * 1.2
    return images, labels


def test_classifier_training_is_deterministic_by_seed_and_cached(tmp_path, caplog):
    images, labels = two_class_images()
    first = train_domain_classifier(images, labels, TINY)
    second = train_domain_classifier(images, labels, TINY)
    other = train_domain_classifier(images, labels, ClassifierRecipe(epochs=1, width=8, feature_dim=16, seed=1))
    assert torch.equal(first.features(images), second.features(images))
    assert not torch.equal(first.features(images), other.features(images))

    cached = load_or_train_domain_classifier(images, labels, TINY, cache_dir=tmp_path)
    assert (cached.cache_path / "diffusion_pytorch_model.safetensors").is_file()
    reloaded = load_or_train_domain_classifier(images, labels, TINY, cache_dir=tmp_path)
    assert reloaded.cache_path == cached.cache_path
    # the weights depend on the CPU's kernels too: the entry says which ones trained it, fresh or reloaded
    kernels = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    assert cached.trained_with == reloaded.trained_with == kernels
    assert json.loads((cached.cache_path / "training.json").read_text())["trained_with"] == kernels
    assert torch.equal(reloaded.features(images), first.features(images))
    # an entry trained on other kernels is still served (that is how one host scores with another's classifier),
    # but not silently
    assert "was trained with" not in caplog.text  # same kernels: no warning
    meta = json.loads((cached.cache_path / "training.json").read_text())
    meta["trained_with"] = {**kernels, "cpu_capability": "OTHER_ISA"}
    (cached.cache_path / "training.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="hf_sprites.evaluation.classifier_cache"):
        foreign = load_or_train_domain_classifier(images, labels, TINY, cache_dir=tmp_path)
    assert foreign.cache_path == cached.cache_path and "OTHER_ISA" in caplog.text
    assert not any(p.name.startswith(".") for p in cached.cache_path.parent.iterdir())  # no temp folders left
    changed = load_or_train_domain_classifier(images, 1 - labels, TINY, cache_dir=tmp_path)
    assert changed.cache_path != cached.cache_path


def test_classifier_accepts_one_hot_labels_and_rejects_bad_input():
    images, labels = two_class_images(40)
    one_hot = torch.nn.functional.one_hot(labels, 2).float()
    clf = train_domain_classifier(images, one_hot, TINY)
    assert clf.config.num_classes == 2 and clf.predict(images).shape == (40,)
    with pytest.raises(ValueError, match="one class per image"):
        train_domain_classifier(images, torch.ones(40, 2), TINY)
    with pytest.raises(ValueError, match="one label per image"):
        train_domain_classifier(images, labels[:10], TINY)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, 8, 8\)"):
        clf.features(torch.zeros(2, 3, 16, 16))


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    if not CRAWL.exists():
        pytest.skip(f"shared data not available: {CRAWL} is absent (real-data evaluation tests need crawl-sprites)")
    from hf_sprites.data import build_transform, load_images, to_tensors

    transform = build_transform(16, 3, interpolation="nearest", background=(255, 255, 255))
    train = to_tensors(load_images(train_data_dir=str(CRAWL), split="train"), transform)
    test = to_tensors(load_images(train_data_dir=str(CRAWL), split="test"), transform)
    classifier = load_or_train_domain_classifier(*train, cache_dir=tmp_path_factory.mktemp("classifier"))
    return train, test, classifier


def test_domain_classifier_test_accuracy_is_above_the_floor(crawl):
    _, (test_images, test_labels), classifier = crawl
    accuracy = float((classifier.predict(test_images) == test_labels).float().mean())
    assert accuracy >= CLASSIFIER_TEST_ACCURACY_FLOOR


def test_domain_fid_of_real_splits_is_small_and_of_noise_is_large(crawl):
    (train_images, _), (test_images, _), classifier = crawl
    extractor = DomainFeatures(classifier)
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))
    half_a, half_b = train_images[order[:1143]], train_images[order[1143:]]
    noise = torch.rand(1000, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert compare_images(train_images, train_images, extractor)["fid"] == pytest.approx(0.0, abs=1e-6)
    halves = compare_images(half_a, half_b, extractor, kid_subsets=10)
    against_noise = compare_images(noise, train_images, extractor, kid_subsets=10)
    assert halves["fid"] < 3.0  # measured 0.55
    assert against_noise["fid"] > 50 * halves["fid"]  # measured ~190
    assert against_noise["kid_mean"] > 50 * max(halves["kid_mean"], 1e-3)


def test_compare_images_rejects_mismatched_sizes_and_channels(crawl):
    (train_images, _), _, classifier = crawl
    with pytest.raises(ValueError, match="build the reference at the model's resolution"):
        compare_images(torch.zeros(100, 1, 16, 16), train_images, DomainFeatures(classifier))


def test_conditional_fid_samples_the_reference_class_mix_and_accuracy_every_class(crawl, tmp_path, monkeypatch):
    """crawl-sprites is 2 % food and 40 % monsters: FID/KID against it ask for that mix, accuracy for each class alike."""
    module = sys.modules["hf_sprites.evaluation.evaluate"]
    asked, real = [], module.generate_samples
    monkeypatch.setattr(module, "generate_samples", lambda pipe, n, *args: asked.append(args[3]) or real(pipe, n, *args))
    torch.manual_seed(0)
    pipe = SpritePipeline(ContextUnet(sample_size=16, n_feat=8, n_cfeat=5).eval(), SpriteScheduler())
    settings = dict(reference=str(CRAWL), num_samples=50, num_inference_steps=2, sampler="ddim", classifier_recipe=TINY,
                    cache_dir=tmp_path, kid_subsets=5, device="cpu")
    result = evaluate(pipe, **settings)
    balanced, mixed = asked
    assert torch.bincount(balanced).tolist() == [10] * 5  # the accuracy's samples
    assert result["fid_labels"] == "reference" and result["fid_class_counts"] == torch.bincount(mixed).tolist() == [5, 20, 1, 10, 14]
    assert all(value is not None for value in result["class_accuracy"]["per_class"])
    asked.clear()
    old_way = evaluate(pipe, **settings, fid_labels="balanced")
    assert len(asked) == 1 and old_way["fid_class_counts"] is None and old_way["fid"] != result["fid"]
    assert old_way["class_accuracy"] == result["class_accuracy"]


def test_conditional_fid_reads_the_class_mix_of_one_hot_course_labels(tmp_path):
    """The course's .npy sprites carry one-hot labels: their class counts come from the rows, not a crash in bincount."""
    g = torch.Generator().manual_seed(0)
    classes = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)  # 60 / 30 / 10 %
    np.save(tmp_path / "sprites_100_16x16.npy", (torch.rand(100, 16, 16, 3, generator=g) * 255).to(torch.uint8).numpy())
    np.save(tmp_path / "sprite_labels_nc_100_16x16.npy", torch.nn.functional.one_hot(classes, 3).float().numpy())
    torch.manual_seed(0)
    pipe = SpritePipeline(ContextUnet(sample_size=16, n_feat=8, n_cfeat=3).eval(), SpriteScheduler())
    result = evaluate(pipe, reference=str(tmp_path), num_samples=20, num_inference_steps=1, sampler="ddim",
                      classifier_recipe=TINY, cache_dir=tmp_path / "cache", kid_subsets=2, device="cpu")
    assert result["fid_class_counts"] == [12, 6, 2]
    assert result["classifier_trained_with"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


# --- evaluate() and the CLI ------------------------------------------------------------------------------------

def digits_pipeline(n_cfeat=10):
    torch.manual_seed(0)
    unet = ContextUnet(sample_size=8, in_channels=1, out_channels=1, n_feat=8, n_cfeat=n_cfeat).eval()
    return SpritePipeline(unet=unet, scheduler=SpriteScheduler())


def run_digits(pipe, tmp_path, **kwargs):
    settings = dict(reference=None, num_samples=30, num_inference_steps=2, sampler="ddim", batch_size=16,
                    classifier_recipe=TINY, cache_dir=tmp_path, kid_subsets=5, device="cpu")
    return evaluate(pipe, **{**settings, **kwargs})


def test_evaluate_conditional_pipeline_is_deterministic(tmp_path):
    pipe = digits_pipeline()
    first = run_digits(pipe, tmp_path)
    second = run_digits(pipe, tmp_path)
    assert first == second
    assert first["fid"] > 0 and first["conditional"] and first["num_reference"] == 1797
    assert len(first["class_accuracy"]["per_class"]) == 10
    assert 0.0 <= first["class_accuracy"]["mean"] <= 1.0
    assert run_digits(pipe, tmp_path, seed=1)["fid"] != first["fid"]


def test_evaluate_errors_come_before_sampling(tmp_path):
    with pytest.raises(ValueError, match="too few for FID"):
        run_digits(digits_pipeline(), tmp_path, num_samples=10)
    with pytest.raises(ValueError, match="takes 5 classes but the reference"):
        run_digits(digits_pipeline(n_cfeat=5), tmp_path)
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        run_digits(str(tmp_path), tmp_path)
    with pytest.raises(ValueError, match="guidance_scale"):
        run_digits(digits_pipeline(), tmp_path, conditional=False, guidance_scale=2.0)
    with pytest.raises(ValueError, match="Unknown sampler"):
        run_digits(digits_pipeline(), tmp_path, sampler="euler")
    with pytest.raises(ValueError, match="fid_labels must be one of"):
        run_digits(digits_pipeline(), tmp_path, fid_labels="uniform")
    with pytest.raises(ValueError, match="guidance_interval must be"):
        run_digits(digits_pipeline(), tmp_path, guidance_scale=2.0, guidance_interval=(0.8, 0.2))


def test_inception_features_say_they_are_unavailable_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises((ImportError, FileNotFoundError), match="domain"):
        InceptionFeatures()


def test_cli_writes_the_json_for_a_saved_pipeline(tmp_path, capsys):
    folder = tmp_path / "pipe"
    digits_pipeline().save_pretrained(folder)
    out = tmp_path / "eval.json"
    result = main([str(folder), "--num_samples", "20", "--num_inference_steps", "2", "--sampler", "ddim",
                   "--feature_dim", "8", "--classifier_epochs", "1", "--kid_subsets", "3",
                   "--cache_dir", str(tmp_path / "cache"), "--output_file", str(out), "--device", "cpu"])
    saved = json.loads(out.read_text())
    assert saved["fid"] == result["fid"] and saved["num_samples"] == 20 and "class_accuracy" in saved
    assert "guidance_interval" not in saved  # every step guided: nothing to record
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["fid"] == result["fid"]
    interval = main([str(folder), "--num_samples", "20", "--num_inference_steps", "2", "--sampler", "ddim",
                     "--feature_dim", "8", "--classifier_epochs", "1", "--kid_subsets", "3", "--guidance_scale", "3",
                     "--guidance_interval", "0.5", "1", "--cache_dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert interval["guidance_interval"] == [0.5, 1.0] and interval["guidance_scale"] == 3.0
