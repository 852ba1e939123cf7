"""hf_sprites.data: every source kind, the transforms, the one batching design (both paths) and every bad-input error."""

import re
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from conftest import TINY_FOLDER_COLOURS, require_shared
from PIL import Image

from hf_sprites.data import (
    DataError,
    DeviceBatcher,
    HubUnreachableError,
    ImageSource,
    ItemBatches,
    ItemDataset,
    balanced_weights,
    build_transform,
    check_images,
    load_images,
    make_batches,
    to_tensors,
    validate_labels,
)
from hf_sprites.data.formats import COURSE_CLASS_NAMES, FASHION_MNIST_CLASS_NAMES, write_idx

pytestmark = pytest.mark.usefixtures("hf_offline")


def png_bytes(image):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet_folder(root, columns, features=None, split="train"):
    """A folder that `load_dataset(root)` reads: data/<split>-00000-of-00001.parquet."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_dict(columns, features=datasets.Features(features) if features else None)
    dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def solid_images(count, size=8):
    return [Image.new("RGB", (size, size), (10 * i, 0, 0)) for i in range(count)]


def expected_value(byte):
    return byte / 127.5 - 1.0


# --- each source kind --------------------------------------------------------------------------------------


def test_embedded_default_is_sklearn_digits():
    from sklearn.datasets import load_digits

    source = load_images()
    digits = load_digits()
    assert (len(source), source.num_classes, source.label_kind) == (1797, 10, "int")
    assert source.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(source.labels, digits.target)
    np.testing.assert_array_equal(source.pixels, np.round(digits.images * 255 / 16).astype(np.uint8))
    images, labels = to_tensors(source, build_transform(8, channels=1))
    assert images.shape == (1797, 1, 8, 8) and labels.dtype == torch.int64
    assert torch.allclose(images[0, 0], torch.from_numpy(source.pixels[0]).float() / 127.5 - 1, atol=1e-6)


def test_course_npy_pair_keeps_one_hot_vectors(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    one_hot = np.eye(5, dtype=np.float64)[[0, 1, 2, 3, 4, 1]]
    np.save(tmp_path / "sprites_6_16x16.npy", pixels)
    np.save(tmp_path / "sprite_labels_nc_6_16x16.npy", one_hot)
    source = load_images(train_data_dir=str(tmp_path))
    assert (source.label_kind, source.num_classes, source.class_names) == ("multi_hot", 5, COURSE_CLASS_NAMES)
    images, labels = to_tensors(source, build_transform(16, channels=3))
    assert labels.dtype == torch.float32 and torch.equal(labels, torch.from_numpy(one_hot).float())
    assert torch.allclose(images[3], torch.from_numpy(pixels[3]).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6)
    assert source.dataset.features["label"] == datasets.List(datasets.Value("float32"))


def test_npy_without_labels_is_unlabelled_and_class_column_then_fails(tmp_path):
    np.save(tmp_path / "sprites_2_8x8.npy", np.zeros((2, 8, 8, 3), np.uint8))
    assert load_images(train_data_dir=str(tmp_path)).labels is None
    with pytest.raises(DataError, match="no labels but --class_column"):
        load_images(train_data_dir=str(tmp_path), class_column="label")


def write_fashion_idx(folder, images, labels, prefix="train", gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_gives_the_hub_schema(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    folder = tmp_path / "fashion-mnist"
    write_fashion_idx(folder, images, np.array([9, 0, 0, 3, 0], np.uint8), gz=gz)
    write_fashion_idx(folder, images[:2], np.array([1, 2], np.uint8), prefix="t10k", gz=gz)
    source = load_images(train_data_dir=str(folder))
    assert source.class_names == FASHION_MNIST_CLASS_NAMES and source.labels.tolist() == [9, 0, 0, 3, 0]
    np.testing.assert_array_equal(source.pixels, images)
    assert source.dataset.features["label"].names[0] == "T - shirt / top"
    np.testing.assert_array_equal(np.asarray(source.dataset[4]["image"]), images[4])
    assert load_images(train_data_dir=str(folder), split="test").labels.tolist() == [1, 2]


def test_idx_outside_a_fashion_folder_gets_digit_names(tmp_path):
    write_fashion_idx(tmp_path / "mnist", np.zeros((2, 28, 28), np.uint8), np.array([7, 1], np.uint8))
    assert load_images(train_data_dir=str(tmp_path / "mnist")).class_names == [str(d) for d in range(10)]


def test_imagefolder_with_class_subfolders(tiny_image_folder):
    source = load_images(train_data_dir=str(tiny_image_folder))
    assert source.class_names == sorted(TINY_FOLDER_COLOURS) and source.num_classes == 2
    images, labels = to_tensors(source, build_transform(4, channels=3))
    for image, label in zip(images, labels, strict=True):
        colour = TINY_FOLDER_COLOURS[source.class_names[label]]
        assert torch.allclose(image[:, 0, 0], torch.tensor([expected_value(c) for c in colour]), atol=1e-6)


def test_parquet_folder_finds_image_and_classlabel_columns(tmp_path):
    folder = write_parquet_folder(
        tmp_path / "sprites",
        {"img": solid_images(4), "kind": [0, 1, 1, 0], "path": ["a", "b", "c", "d"]},
        {
            "img": datasets.Image(),
            "kind": datasets.ClassLabel(names=["hero", "spell"]),
            "path": datasets.Value("string"),
        },
    )
    source = load_images(dataset_name=str(folder))
    assert source.dataset.column_names == ["image", "label"]
    assert (source.class_names, source.labels.tolist()) == (["hero", "spell"], [0, 1, 1, 0])
    assert source.dataset[2]["image"].getpixel((0, 0)) == (20, 0, 0)


def test_string_labels_are_class_encoded_and_vectors_are_multi_hot(tmp_path):
    folder = write_parquet_folder(tmp_path / "strings", {"image": solid_images(3), "animal": ["dog", "cat", "dog"]})
    source = load_images(train_data_dir=str(folder), class_column="animal")
    assert (source.class_names, source.labels.tolist()) == (["cat", "dog"], [1, 0, 1])
    vectors = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    folder = write_parquet_folder(tmp_path / "vectors", {"image": solid_images(3), "labels": vectors})
    source = load_images(train_data_dir=str(folder))
    assert source.label_kind == "multi_hot" and source.labels.tolist() == vectors


# --- real data in ../shared --------------------------------------------------------------------------------


def test_crawl_sprites_from_shared():
    folder = require_shared("data/crawl-sprites")
    source = load_images(dataset_name=str(folder))
    assert len(source) == 2286 and source.class_names == ["hero", "monster", "food_potion", "spell", "item"]
    assert np.bincount(source.labels).tolist() == [236, 903, 43, 450, 654]
    images, labels = to_tensors(source, build_transform(16, channels=3), max_items=64)
    assert images.shape == (64, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    first = source.dataset[0]["image"]
    assert first.mode == "RGBA" and first.getpixel((0, 0))[3] == 0  # a transparent corner ...
    assert torch.equal(images[0, :, 0, 0], torch.ones(3))  # ... becomes the white background
    with pytest.raises(DataError, match="no split 'validation'.*'train', 'test'"):
        load_images(dataset_name=str(folder), split="validation")


def test_fashion_mnist_idx_from_shared():
    folder = require_shared("data/fashion-mnist")
    source = load_images(train_data_dir=str(folder))
    assert source.pixels.shape == (60000, 28, 28) and source.class_names == FASHION_MNIST_CLASS_NAMES
    assert source.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    images, labels = to_tensors(source, build_transform(28, channels=1), max_items=10)
    assert images.shape == (10, 1, 28, 28) and labels.tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


# --- transforms --------------------------------------------------------------------------------------------


def test_rgba_is_composited_on_the_background():
    image = Image.new("RGBA", (2, 1), (200, 10, 10, 0))
    image.putpixel((1, 0), (255, 255, 255, 128))
    x = build_transform(2, channels=3, background=(0, 128, 255))(image)
    assert torch.allclose(
        x[:, 0, 0], torch.tensor([-1.0, expected_value(128), 1.0]), atol=1e-6
    )  # transparent → background
    assert torch.allclose(x[:, 0, 1], torch.tensor([expected_value(v) for v in (128, 192, 255)]), atol=0.02)  # half
    gray = build_transform(2, channels=1, background="black")(image)
    assert gray.shape == (1, 2, 2) and gray[0, 0, 0] == -1.0  # resized to a square, transparent → black


def palette_image(size=32):
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [30, 60, 200]], np.uint8)
    return Image.fromarray(palette[np.random.default_rng(2).integers(0, 4, (size, size))]), palette


def colours_of(tensor):
    pixels = ((tensor + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).reshape(-1, 3)
    return {tuple(p) for p in pixels.tolist()}


def test_nearest_resize_keeps_the_palette_and_bilinear_does_not():
    image, palette = palette_image()
    allowed = {tuple(p) for p in palette.tolist()}
    for size in (16, 64):
        assert colours_of(build_transform(size, channels=3)(image)) <= allowed
    assert not colours_of(build_transform(16, channels=3, interpolation="bilinear")(image)) <= allowed


def test_center_crop_and_square_resize():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # a white band on the left quarter
    squashed = build_transform(8, channels=3)(image)
    cropped = build_transform(8, channels=3, center_crop=True)(image)
    assert squashed.shape == cropped.shape == (3, 8, 8)
    assert squashed[0, 0, 0] == 1.0 and cropped[0, 0, 0] == -1.0  # the crop cuts the band away


@pytest.mark.parametrize(
    "shape, channels", [((7, 16, 16, 3), 1), ((7, 16, 16, 3), 3), ((7, 16, 16), 3), ((7, 16, 16), 1)]
)
def test_array_fast_path_equals_per_image_transform(shape, channels):
    pixels = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    transform = build_transform(16, channels=channels)
    per_image = torch.stack([transform(Image.fromarray(p)) for p in pixels])
    assert torch.equal(transform.from_pixels(pixels), per_image)
    assert build_transform(8, channels=channels).from_pixels(pixels) is None  # resizing goes through PIL


def test_random_flip_flips_per_item_and_to_tensors_refuses_it():
    image = Image.new("L", (4, 4), 0)
    image.putpixel((0, 0), 255)
    transform = build_transform(4, channels=1, random_flip=True)
    corners = {tuple(transform(image)[0, 0, [0, 3]].tolist()) for _ in range(40)}
    assert corners == {(1.0, -1.0), (-1.0, 1.0)}
    with pytest.raises(DataError, match="deterministic"):
        to_tensors(load_images(), transform)


# --- batching: one design for on-device tensors and per-item loading ------------------------------------------


def indexed_tensors(count=10):
    """Images whose every pixel holds the item's index, so batches can be traced back to items."""
    images = torch.arange(count, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    images[:, :, :, 0] += 0.5  # the left column differs: a horizontal flip moves it right
    return images, torch.arange(count)


def test_device_batcher_covers_an_epoch_and_reshuffles():
    images, labels = indexed_tensors(10)
    batcher = DeviceBatcher(images, labels, batch_size=3, seed=0)
    epoch0 = [labels.tolist() for _, labels in batcher]
    epoch1 = [labels.tolist() for _, labels in batcher]
    assert len(batcher) == 3 and len(epoch0) == 3 and batcher.epoch == 2
    assert len(set(sum(epoch0, []))) == 9 and epoch0 != epoch1
    for batch_images, batch_labels in DeviceBatcher(images, labels, batch_size=3, seed=0):
        assert torch.equal(batch_images[:, 0, 0, 1], batch_labels.float())
    assert len(DeviceBatcher(images, labels, batch_size=3, seed=0, drop_last=False)) == 4


def test_device_batcher_resumes_at_the_same_batch_with_the_same_flips():
    images, labels = indexed_tensors(20)
    first = DeviceBatcher(images, labels, batch_size=4, seed=7, random_flip=True)
    stream = (batch for _ in range(3) for batch in first)  # iterating a batcher yields one epoch
    for _ in range(7):  # into the second epoch
        next(stream)
    state = first.state_dict()
    expected = list(first)  # the rest of epoch 1
    resumed = DeviceBatcher(images, labels, batch_size=4, seed=0, random_flip=True)
    resumed.load_state_dict(state)
    got = list(resumed)
    assert (state["epoch"], state["position"], len(got)) == (1, 2, 3)
    for (got_images, got_labels), (want_images, want_labels) in zip(got, expected, strict=True):
        assert torch.equal(got_images, want_images) and torch.equal(got_labels, want_labels)
    flipped = torch.cat([batch_images[:, 0, 0, 1] != batch_labels.float() for batch_images, batch_labels in got])
    assert 0 < int(flipped.sum()) < len(flipped)  # some items flipped, some not


def indexed_source(count, label_vectors=False):
    """4x4 grey images that hold their index (bright left column, so a flip shows), labelled by index."""
    pixels = np.zeros((count, 4, 4), np.uint8)
    pixels[:] = np.arange(count, dtype=np.uint8).reshape(-1, 1, 1) * 2
    pixels[:, :, 0] = 255
    labels = np.eye(count, dtype=np.float32) if label_vectors else np.arange(count)
    return ImageSource.from_arrays(pixels, labels, source=f"{count} indexed images")


def both_paths(source, batch_size, seed, **options):
    """The on-device and the per-item batches of the same source, transform and options."""
    transform = build_transform(4, channels=1)
    on_device = DeviceBatcher(*to_tensors(source, transform), batch_size, seed, **options)
    return on_device, ItemBatches(ItemDataset(source, transform), batch_size, seed, **options)


def epochs_of(batches, count):
    return [batch for _ in range(count) for batch in batches]


def test_both_paths_yield_the_same_items_flips_and_labels():
    on_device, per_item = both_paths(indexed_source(22), batch_size=4, seed=3, random_flip=True)
    got, want = epochs_of(per_item, 2), epochs_of(on_device, 2)
    assert len(got) == len(want) == 2 * len(per_item) == 10 and (per_item.epoch, per_item.position) == (2, 0)
    for (got_images, got_labels), (want_images, want_labels) in zip(got, want, strict=True):
        assert torch.equal(got_images, want_images) and torch.equal(got_labels, want_labels)
        assert got_labels.dtype == torch.int64 and got_labels.shape == (4,)  # class indices, not one-hot
    flipped = torch.cat([images[:, 0, 0, 0] != 1.0 for images, _ in got])  # the bright column moved right
    assert 0 < int(flipped.sum()) < len(flipped)
    assert [labels.tolist() for _, labels in got[:5]] != [labels.tolist() for _, labels in got[5:]]  # reshuffled


def test_label_vectors_come_through_as_float_vectors():
    on_device, per_item = both_paths(indexed_source(6, label_vectors=True), batch_size=3, seed=0)
    for (_, got), (_, want) in zip(per_item, on_device, strict=True):
        assert got.dtype == torch.float32 and got.shape == (3, 6) and torch.equal(got, want)


@pytest.mark.parametrize("num_processes", [2, 3])
def test_process_shards_are_disjoint_and_cover_the_epoch(num_processes):
    images, labels = indexed_tensors(26)
    single = DeviceBatcher(images, labels, batch_size=2 * num_processes, seed=5)
    shards = [
        [batch_labels for _, batch_labels in DeviceBatcher(images, labels, 2, seed=5, num_processes=num_processes,
                                                           process_index=index)]
        for index in range(num_processes)
    ]
    seen = [set(torch.cat(batches).tolist()) for batches in shards]
    assert sum(map(len, seen)) == len(set().union(*seen)) == len(single) * 2 * num_processes  # disjoint, no repeats
    for step, (_, together) in enumerate(single):  # step s of all processes is step s of one process's batch
        assert set(together.tolist()) == set(torch.cat([batches[step] for batches in shards]).tolist())


def test_per_item_batches_resume_at_the_same_batch_and_accept_the_device_state():
    source = indexed_source(20)
    on_device, per_item = both_paths(source, batch_size=4, seed=7, random_flip=True)
    stream = (batch for _ in range(3) for batch in per_item)
    for _ in range(7):  # into the second epoch
        next(stream)
    state = per_item.state_dict()
    expected = list(per_item)  # the rest of epoch 1
    assert (state["epoch"], state["position"], len(expected)) == (1, 2, 3)
    for state in (state, {**on_device.state_dict(), "epoch": 1, "position": 2}):
        _, resumed = both_paths(source, batch_size=4, seed=0, random_flip=True)
        resumed.load_state_dict(state)
        for (got_images, got_labels), (want_images, want_labels) in zip(list(resumed), expected, strict=True):
            assert torch.equal(got_images, want_images) and torch.equal(got_labels, want_labels)


def test_resume_with_other_data_or_batches_names_the_difference():
    images, labels = indexed_tensors(8)
    state = DeviceBatcher(images, labels, batch_size=2, seed=0).state_dict()
    assert (state["num_items"], state["batch_size"], state["num_processes"]) == (8, 2, 1)
    others = {
        "batches of 4 x 1": DeviceBatcher(images, labels, batch_size=4, seed=0),
        "batches of 2 x 2": DeviceBatcher(images, labels, batch_size=2, seed=0, num_processes=2),
        "this run has 6 images": DeviceBatcher(images[:6], labels[:6], batch_size=2, seed=0),
        f"(fingerprint {state['fingerprint']})": DeviceBatcher(images + 1, labels, batch_size=2, seed=0),
    }
    for difference, batches in others.items():
        with pytest.raises(DataError, match=f"made with 8 images .*{re.escape(difference)}.*same data"):
            batches.load_state_dict(state)


def test_make_batches_picks_the_path_and_both_give_the_same_batches():
    cfg = SimpleNamespace(resolution=4, center_crop=False, interpolation="nearest", background=(255, 255, 255),
                          train_batch_size=3, seed=1, random_flip=True, balance_classes=False, max_train_samples=9,
                          dataloader_num_workers=0)
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, process_index=0)
    made = {where: make_batches(SimpleNamespace(**vars(cfg), cache_on_device=where), indexed_source(12), accelerator, 1)
            for where in ("always", "never", "auto")}
    assert [type(batches).__name__ for batches in made.values()] == ["DeviceBatcher", "ItemBatches", "DeviceBatcher"]
    assert len(made["never"]) == 3  # 9 of the 12 images (max_train_samples) in batches of 3
    for (got_images, got_labels), (want_images, want_labels) in zip(made["never"], made["always"], strict=True):
        assert torch.equal(got_images, want_images) and torch.equal(got_labels, want_labels)


def test_item_dataset_with_a_dataloader(tiny_image_folder):
    source = load_images(train_data_dir=str(tiny_image_folder))
    loader = torch.utils.data.DataLoader(
        ItemDataset(source, build_transform(4, 3)), batch_size=6, collate_fn=ItemDataset.collate
    )
    images, labels = next(iter(loader))
    assert images.shape == (6, 3, 4, 4) and labels.tolist() == source.labels.tolist()
    unlabelled = ImageSource.from_arrays(np.zeros((2, 4, 4), np.uint8))
    assert ItemDataset.collate([ItemDataset(unlabelled, build_transform(4, 1))[0]])[1] is None


# --- bad input ---------------------------------------------------------------------------------------------


def test_unreachable_hub_names_the_offline_options():
    with pytest.raises(HubUnreachableError) as caught:
        load_images(dataset_name="hf-sprites-tests/not-in-any-cache")
    message = str(caught.value)
    for option in ("--train_data_dir", "IDX", "HF_HUB_OFFLINE=1", "not in the local cache"):
        assert option in message


def test_missing_local_folder_and_both_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_images(dataset_name=str(tmp_path / "nope" / "sprites"))
    with pytest.raises(DataError, match="either --dataset_name or --train_data_dir"):
        load_images(dataset_name="a/b", train_data_dir=str(tmp_path))
    with pytest.raises(DataError, match="unknown dataset .not a name!.*HFValidationError"):
        load_images(dataset_name="not a name!")


def test_folder_without_images_and_without_image_column(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError):
        load_images(train_data_dir=str(tmp_path / "empty"))
    folder = write_parquet_folder(tmp_path / "numbers", {"x": [1, 2], "label": [0, 1]})
    with pytest.raises(DataError, match="no image column"):
        load_images(train_data_dir=str(folder))
    with pytest.raises(DataError, match="not images"):
        load_images(train_data_dir=str(folder), image_column="x")
    folder = write_parquet_folder(tmp_path / "paths", {"image": solid_images(2), "path": ["gone/a.png", "gone/b.png"]})
    with pytest.raises(DataError, match="image 0 of .*No such file.*If column 'path' does not hold the images"):
        load_images(train_data_dir=str(folder), image_column="path")


def test_missing_class_column_lists_the_columns(tiny_image_folder):
    with pytest.raises(DataError, match=r"class column 'kind' is not in .*\['image', 'label'\]"):
        load_images(train_data_dir=str(tiny_image_folder), class_column="kind")


def test_negative_and_out_of_range_labels(tmp_path):
    folder = write_parquet_folder(tmp_path / "neg", {"image": solid_images(3), "label": [0, -1, 1]})
    with pytest.raises(DataError, match="label -1 at row 1 is negative"):
        load_images(train_data_dir=str(folder))
    with pytest.raises(DataError, match="label 3 at row 1 is out of range for 2 classes.*n_cfeat=4"):
        ImageSource.from_arrays(np.zeros((2, 4, 4), np.uint8), [1, 3], class_names=["a", "b"])
    with pytest.raises(DataError, match="out of range for 5 classes"):
        validate_labels(torch.tensor([0, 5]), 5)
    with pytest.raises(DataError, match="entries but the model expects 4"):
        validate_labels(np.zeros((2, 5)), 4)
    with pytest.raises(DataError, match="values in \\[0, 1\\]"):
        validate_labels(np.array([[0.0, 2.0]]), 2)


def test_unreadable_image_is_named_by_row_before_training(tmp_path):
    rows = [{"bytes": png_bytes(image), "path": None} for image in solid_images(3)]
    rows[2] = {"bytes": b"not a png", "path": None}
    folder = write_parquet_folder(tmp_path / "broken", {"image": rows}, {"image": datasets.Image()})
    source = load_images(train_data_dir=str(folder))
    with pytest.raises(DataError, match="image 2 of .* cannot be read"):
        check_images(source)
    with pytest.raises(DataError, match="image 2 of"):
        to_tensors(source, build_transform(8, 3))


def test_wrong_split_names_the_splits(tmp_path, tiny_image_folder):
    with pytest.raises(DataError, match=r"no split 'test'; its splits are \['train'\]"):
        load_images(train_data_dir=str(tiny_image_folder), split="test")
    write_fashion_idx(tmp_path / "fashion", np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(DataError, match="no IDX files for split 'validation'"):
        load_images(train_data_dir=str(tmp_path / "fashion"), split="validation")
    with pytest.raises(DataError, match="single split 'train'"):
        load_images(split="test")


def test_broken_idx_files(tmp_path):
    folder = tmp_path / "fashion"
    write_fashion_idx(folder, np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), gz=False)
    images_file = folder / "train-images-idx3-ubyte"
    images_file.write_bytes(images_file.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_images(train_data_dir=str(folder))
    images_file.write_bytes(b"\x00\x00\x0d\x03" + bytes(100))
    with pytest.raises(DataError, match="not a uint8 IDX file"):
        load_images(train_data_dir=str(folder))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channels": 2}, "channels must be 1"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"background": (0, 0)}, "not a colour"),
    ],
)
def test_bad_transform_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        build_transform(**{"resolution": 16, "channels": 3, **kwargs})


def test_batch_larger_than_data_and_mismatched_resume():
    images, labels = indexed_tensors(5)
    with pytest.raises(DataError, match="lower --train_batch_size"):
        DeviceBatcher(images, labels, batch_size=8, seed=0)
    state = DeviceBatcher(images, labels, batch_size=2, seed=0).state_dict()
    with pytest.raises(DataError, match="same data, --train_batch_size"):
        DeviceBatcher(images, labels, batch_size=1, seed=0).load_state_dict(state)


# --- class-balanced batches (--balance_classes) -------------------------------------------------------------------


def rare_class_tensors(count=100, rare=10):
    """`count` 1x2x2 images labelled 0, the last `rare` of them labelled 1."""
    labels = torch.zeros(count, dtype=torch.int64)
    labels[-rare:] = 1
    return torch.arange(count, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2), labels


def test_balanced_weights_give_every_class_the_same_share():
    weights = balanced_weights([0, 0, 0, 1, 2, 2])
    assert [round(float(weights[[0, 1, 2]].sum()), 6), float(weights[3]), float(weights[[4, 5]].sum())] == [1.0] * 3
    one_hot = torch.eye(3)[[0, 0, 0, 1, 2, 2]]  # the course's one-hot context vectors are classes too
    assert torch.equal(balanced_weights(one_hot), weights)
    for mixed in (torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])):
        with pytest.raises(DataError, match="one class per image.*drop --balance_classes"):
            balanced_weights(mixed)


def test_balanced_batches_draw_a_rare_class_as_often_as_a_common_one():
    images, labels = rare_class_tensors()
    plain = DeviceBatcher(images, labels, batch_size=10, seed=0)
    balanced = DeviceBatcher(images, labels, batch_size=10, seed=0, sample_weights=balanced_weights(labels))
    plain_labels = torch.cat([batch_labels for _ in range(5) for _, batch_labels in plain])
    balanced_labels = torch.cat([batch_labels for _ in range(5) for _, batch_labels in balanced])
    assert len(plain_labels) == len(balanced_labels) == 500  # the same epoch length
    assert plain_labels.float().mean() == 0.1  # every image once per epoch: the data's share
    assert 0.4 < balanced_labels.float().mean() < 0.6  # drawn with replacement: about half
    for batch_images, batch_labels in DeviceBatcher(images, labels, 10, 0, sample_weights=balanced_weights(labels)):
        assert torch.equal(batch_labels, (batch_images[:, 0, 0, 0] >= 90).long())  # labels stay with their images
    again = DeviceBatcher(images, labels, batch_size=10, seed=0, sample_weights=balanced_weights(labels))
    assert torch.equal(torch.cat([batch for _ in range(5) for _, batch in again]), balanced_labels)  # seeded


def test_balanced_batches_resume_only_as_balanced_batches():
    images, labels = rare_class_tensors()
    balanced = DeviceBatcher(images, labels, batch_size=10, seed=3, sample_weights=balanced_weights(labels))
    stream = (batch for _ in range(2) for batch in balanced)
    for _ in range(13):
        next(stream)
    state, expected = balanced.state_dict(), list(balanced)
    resumed = DeviceBatcher(images, labels, batch_size=10, seed=0, sample_weights=balanced_weights(labels))
    resumed.load_state_dict(state)
    assert all(torch.equal(got[1], want[1]) for got, want in zip(list(resumed), expected, strict=True))
    with pytest.raises(DataError, match=r"made with 100 images \(fingerprint \w+\) drawn class-balanced.*"
                                        r"--balance_classes"):
        DeviceBatcher(images, labels, batch_size=10, seed=3).load_state_dict(state)
    plain_state = DeviceBatcher(images, labels, batch_size=10, seed=3).state_dict()
    del plain_state["balanced"]  # a checkpoint written before the flag existed: every image once per epoch
    DeviceBatcher(images, labels, batch_size=10, seed=3).load_state_dict(plain_state)
    with pytest.raises(DataError, match="balanced"):
        resumed.load_state_dict(plain_state)


def test_make_batches_balances_classes_on_both_paths():
    cfg = SimpleNamespace(resolution=4, center_crop=False, interpolation="nearest", background=(255, 255, 255),
                          train_batch_size=4, seed=1, random_flip=False, balance_classes=True, max_train_samples=None,
                          dataloader_num_workers=0)
    pixels = np.zeros((40, 4, 4), np.uint8)
    source = ImageSource.from_arrays(pixels, np.array([0] * 36 + [1] * 4), source="40 images, 4 of class 1")
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, process_index=0)
    for where in ("always", "never"):
        batches = make_batches(SimpleNamespace(**vars(cfg), cache_on_device=where), source, accelerator, 1)
        drawn = torch.cat([batch_labels for _ in range(10) for _, batch_labels in batches])
        assert 0.4 < drawn.float().mean() < 0.6, where
