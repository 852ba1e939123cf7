"""The demo as a person uses it: a real server on 127.0.0.1, every endpoint called through gradio_client, the pushed
Space app run without hf_sprites, and a real browser (Debian's chromium driven by Playwright).

Outside CI, the tests skip (saying what to install) when Gradio, gradio_client, Playwright or /usr/bin/chromium is
missing; with CI=true they fail instead, because .ci/run installs them.

The browser test saves its screenshot to a temporary folder. To make the README's picture with a trained model:
    DEMO_PIPELINE=outputs/default DEMO_SCREENSHOT=docs/images/demo.png python -m pytest tests/test_demo.py -k browser
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from PIL import Image

import hf_sprites.hub.push as push_module
from hf_sprites import BasicUNet, ContextUnet, CorruptScheduler, SpritePipeline, SpriteScheduler, cli
from hf_sprites.demo import MAX_IMAGE_STEPS, Request, SpriteDemo
from hf_sprites.hub.card import write_model_card
from hub_helpers import HIDE_HF_SPRITES, RecordingHfApi

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
NAMES = ["hero", "food", "item"]


def require(present: bool, what: str, install: str) -> None:
    """Skip when `what` is missing, or fail in CI, where .ci/run installs it."""
    if present:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing, but CI must have it: .ci/run runs `{install}`.")
    pytest.skip(f"{what} is not installed here; `{install}` brings it.")


def require_module(name: str, install: str = 'pip install -c constraints.txt -e ".[test,demo]"'):
    require(importlib.util.find_spec(name) is not None, f"the Python package {name}", install)
    return __import__(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def save_demo_folders(root: Path) -> dict[str, Path]:
    """Tiny pipelines of the three kinds the app tells apart: context mixtures, class embeddings, unconditional."""
    torch.manual_seed(0)
    folders = {kind: root / kind for kind in ("mixture", "class", "corrupt")}
    SpritePipeline(ContextUnet(sample_size=16, n_feat=8, n_cfeat=3).eval(), SpriteScheduler()).save_pretrained(folders["mixture"])
    write_model_card(folders["mixture"], conditional=True, class_names=NAMES)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, num_class_embeds=2,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))  # fmt: skip
    SpritePipeline(unet.eval(), DDPMScheduler(num_train_timesteps=50)).save_pretrained(folders["class"])
    DDPMPipeline(BasicUNet(sample_size=8).eval(), CorruptScheduler(num_train_timesteps=40)).save_pretrained(folders["corrupt"])
    return folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_demo_folders(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def serve_folder():
    """Start `hf-sprites demo`'s server on a free 127.0.0.1 port for a folder; returns its URL; closed at the end."""
    require_module("gradio")
    from hf_sprites.demo.serve import serve

    pages, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)

    def start(folder) -> str:
        port = free_port()
        pages.append(serve(folder, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True))
        return f"http://127.0.0.1:{port}/"

    yield start
    for page in pages:
        page.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client_for(serve_folder):
    gradio_client = require_module("gradio_client")
    return lambda folder: gradio_client.Client(serve_folder(folder), verbose=False, download_files=True)


def endpoints(client) -> dict[str, list[str]]:
    """Each named endpoint and its parameter names, as gradio_client sees them."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return {name: [p["parameter_name"] for p in spec["parameters"]] for name, spec in info.items()}


def assert_not_blank(image: Image.Image) -> None:
    assert np.asarray(image.convert("L"), dtype=np.float32).std() > 10


# --- gradio_client: every endpoint --------------------------------------------------------------------------------
def test_mixture_model_endpoints(folders, client_for):
    client = client_for(folders["mixture"])
    assert endpoints(client) == {
        "/sampler_steps": ["sampler"],
        "/pick_class": ["class_index"],
        "/generate": ["mixture_0", "mixture_1", "mixture_2", "guidance_scale", "sampler", "steps", "seed", "batch_size"],
    }
    assert client.predict("food", api_name="/pick_class") == (0.0, 1.0, 0.0)  # names from the model card
    assert [client.predict(s, api_name="/sampler_steps") for s in ("DDPM", "DDIM", "DPM-Solver")] == [500, 25, 20]

    job = client.submit(0.2, 1.0, 0.6, 2.0, "DDIM", 4, 3, 5, api_name="/generate")
    grid_path, gif_path, summary = job.result(timeout=120)
    grid = Image.open(grid_path)
    assert grid.size == (3 * 100, 2 * 100)  # 5 images of 16 px, x6 to 96 px + 2 px frames, on a 3x2 grid
    assert_not_blank(grid)
    gif = Image.open(gif_path)
    assert gif.n_frames == 4  # one frame per denoising step
    first, last = (np.asarray(f.convert("RGB"), dtype=np.float32) for f in (gif.copy(), _frame(gif, 3)))
    assert gif.size == grid.size and np.abs(first - last).mean() > 5  # the frames move from noise to the samples
    assert re.fullmatch(r"5 images x 4 DDIM steps in \d+\.\d s \(CPU\)", summary)

    again = Image.open(client.predict(0.2, 1.0, 0.6, 2.0, "DDIM", 4, 3, 5, api_name="/generate")[0])
    other_seed = Image.open(client.predict(0.2, 1.0, 0.6, 2.0, "DDIM", 4, 4, 5, api_name="/generate")[0])
    assert again.tobytes() == grid.tobytes() and other_seed.tobytes() != grid.tobytes()
    dpm = Image.open(client.predict(1, 0, 0, 1, "DPM-Solver", 3, 0, 2, api_name="/generate")[0])
    assert dpm.size == (2 * 100, 100)


def _frame(gif: Image.Image, index: int) -> Image.Image:
    gif.seek(index)
    return gif.copy()


def test_an_over_limit_request_gets_a_message_instead_of_running(folders, client_for):
    from gradio_client.exceptions import AppError

    client = client_for(folders["mixture"])
    with pytest.raises(AppError, match=rf"64 images x 500 steps = 32,000 denoising steps, over this demo's limit of {MAX_IMAGE_STEPS:,}\."):
        client.predict(1, 0, 0, 1, "DDPM", 500, 0, 64, api_name="/generate")
    just_over = MAX_IMAGE_STEPS // 500 + 1
    with pytest.raises(AppError, match=rf"{just_over} images x 500 steps .* Lower the batch size or the steps"):
        client.predict(1, 0, 0, 1, "DDPM", 500, 0, just_over, api_name="/generate")
    with pytest.raises(AppError, match="Steps, seed and batch size must be whole numbers; fill in each of them"):
        client.predict(1, 0, 0, 1, "DDIM", 5, None, 2, api_name="/generate")  # the seed box left empty


def test_sampling_reports_progress(folders, client_for):
    client = client_for(folders["mixture"])
    job = client.submit(1, 0, 0, 1, "DDPM", 60, 0, 2, api_name="/generate")
    progress = []
    while not job.done():
        progress += [unit for unit in (job.status().progress_data or []) if unit.length]
        time.sleep(0.01)
    job.result(timeout=120)
    assert progress and {unit.length for unit in progress} == {60} and progress[-1].unit == "steps"


def test_class_embedding_model_gets_a_class_picker_only(folders, client_for):
    client = client_for(folders["class"])
    assert endpoints(client) == {"/sampler_steps": ["sampler"], "/generate": ["class_index", "sampler", "steps", "seed", "batch_size"]}
    assert client.predict("DDPM", api_name="/sampler_steps") == 50
    grid_path, gif_path, summary = client.predict("class 1", "DDPM", 50, 0, 4, api_name="/generate")
    assert Image.open(grid_path).size == (2 * 100, 2 * 100) and Image.open(gif_path).n_frames == 40  # 50 steps, 40 frames
    assert_not_blank(Image.open(grid_path))
    assert summary.startswith("4 images x 50 DDPM steps")


def test_unconditional_corrupt_model_gets_steps_seed_and_batch_only(folders, client_for):
    client = client_for(folders["corrupt"])
    assert endpoints(client) == {"/generate": ["steps", "seed", "batch_size"]}
    grid_path, gif_path, summary = client.predict(5, 1, 3, api_name="/generate")
    grid = Image.open(grid_path)
    assert grid.size == (2 * 100, 2 * 100) and Image.open(gif_path).n_frames == 5
    assert_not_blank(grid)  # the untrained BasicUNet's output: not one flat colour
    assert summary.startswith("3 images x 5 CorruptScheduler steps")


def test_demo_describes_each_kind_and_checks_requests(folders):
    from hf_sprites.demo.serve import build_demo

    mixture, by_class, corrupt = (build_demo(folders[k]) for k in ("mixture", "class", "corrupt"))
    assert (mixture.conditioning, mixture.class_names) == ("mixture", NAMES)
    assert "names from the model card" in mixture.describe()
    assert (by_class.conditioning, by_class.class_names) == ("class", ["class 0", "class 1"])
    assert "not recorded in the model card, so numbered" in by_class.describe()
    assert (corrupt.conditioning, corrupt.samplers) == ("none", ["CorruptScheduler"])
    assert corrupt.default_request().batch_size * corrupt.default_request().steps <= MAX_IMAGE_STEPS
    with pytest.raises(ValueError, match=r"Sampler 'DDIM' does not apply to this model; choose one of \['CorruptScheduler'\]"):
        corrupt.sample(Request(sampler="DDIM", steps=2, batch_size=1))
    with pytest.raises(ValueError, match="The mixture needs 3 weights, one per class"):
        mixture.sample(Request(steps=2, batch_size=1, mixture=[1, 0]))
    with pytest.raises(ValueError, match="2 class names given for a model with 3 classes"):
        SpriteDemo(mixture.pipe, conditional=True, class_names=["a", "b"])


# --- the command line: help, and bad input before anything starts ---------------------------------------------------
def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_help_shows_the_command(capsys):
    code, out, _ = run(["demo", "--help"], capsys)
    assert code == 0 and "example:\n  hf-sprites demo outputs/default --port 7860" in out and "--host" in out


def test_bad_input_is_one_line_before_anything_starts(folders, tmp_path, capsys, monkeypatch):
    require_module("gradio")
    not_a_pipeline, port = tmp_path / "plain", free_port()
    not_a_pipeline.mkdir()
    code, _, err = run(["demo", not_a_pipeline, "--port", port], capsys)
    assert code == 1 and "has no model_index.json, so it is not a pipeline folder" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        code, _, err = run(["demo", folders["mixture"], "--port", used], capsys)
    assert code == 1 and f"Port {used} on 127.0.0.1 is not free" in err and f"--port {used + 1}" in err
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the demo extra were not installed
    code, _, err = run(["demo", folders["mixture"], "--port", port], capsys)
    assert code == 1 and "The demo needs Gradio, which is not installed" in err and '".[demo]"' in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not listening(port) and [p.name for p in tmp_path.iterdir()] == ["plain"] and not any(not_a_pipeline.iterdir())


def test_push_with_demo_needs_gradio_and_creates_nothing_without_it(folders, tmp_path, capsys, monkeypatch):
    RecordingHfApi.instances.clear()
    monkeypatch.setattr(push_module, "HfApi", lambda token=None: RecordingHfApi(token, tmp_path / "uploaded"))
    monkeypatch.setitem(sys.modules, "gradio", None)
    code, _, err = run(["push", folders["mixture"], "someone/tiny", "--hub_token", "hf_x", "--with_demo"], capsys)
    assert code == 1 and "The demo needs Gradio" in err
    assert [api.calls for api in RecordingHfApi.instances] == [[]] and not (tmp_path / "uploaded").exists()


# --- the pushed repo as a Space: app.py run without hf_sprites ------------------------------------------------------
@pytest.fixture(scope="module")
def uploads(folders, tmp_path_factory):
    require_module("gradio")
    root = tmp_path_factory.mktemp("space")
    for kind in ("mixture", "corrupt"):
        api = RecordingHfApi(capture_dir=root / kind)
        push_module.push_folder(folders[kind], f"someone/{kind}", token="hf_TestToken000", api=api, with_demo=True)
    return root


def test_push_with_demo_adds_the_space_files(uploads):
    import diffusers
    import gradio

    app_source = Path(importlib.util.find_spec("hf_sprites.demo.app").origin).read_bytes()
    for kind in ("mixture", "corrupt"):
        folder = uploads / kind
        assert (folder / "app.py").read_bytes() == app_source  # the same code as `hf-sprites demo`
        assert (folder / "requirements.txt").read_text().splitlines() == [
            f"torch=={torch.__version__.split('+')[0]}", f"diffusers=={diffusers.__version__}",
        ]  # fmt: skip
        front_matter = (folder / "README.md").read_text().split("---")[1]
        assert "sdk: gradio" in front_matter and "app_file: app.py" in front_matter
        assert f"sdk_version: {gradio.__version__}" in front_matter
    assert "class SpritePipeline(" in (uploads / "corrupt" / "sprite_pipeline.py").read_text()  # a DDPMPipeline repo
    assert json.loads((uploads / "corrupt" / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"


def test_pushed_app_runs_as_a_space_without_hf_sprites(uploads, tmp_path):
    gradio_client = require_module("gradio_client")
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    script = HIDE_HF_SPRITES + "import runpy\nrunpy.run_path('app.py', run_name='__main__')\n"
    log = tmp_path / "space.log"
    with open(log, "w") as out:
        space = subprocess.Popen([sys.executable, "-c", script], cwd=uploads / "mixture", env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while not listening(port):
            assert space.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert client.predict("item", api_name="/pick_class") == (0.0, 0.0, 1.0)  # class names from the pushed card
        grid_path, gif_path, summary = client.predict(0, 1, 0.5, 3, "DDIM", 3, 0, 4, api_name="/generate")
        assert Image.open(grid_path).size == (2 * 100, 2 * 100) and Image.open(gif_path).n_frames == 3
        assert summary.startswith("4 images x 3 DDIM steps")
    finally:
        space.terminate()
        space.wait(timeout=60)
    assert "ModuleNotFoundError: No module named 'hf_sprites" not in log.read_text()


# --- a real browser --------------------------------------------------------------------------------------------------
def test_browser_picks_a_class_moves_a_slider_and_generates(folders, serve_folder, tmp_path):
    """A person's session on a ContextUnet model: class, one more class mixed in, guidance 3, Generate, the grid."""
    require(CHROMIUM.is_file(), str(CHROMIUM), "apt-get update && apt-get install -y chromium")
    require_module("playwright")
    from playwright.sync_api import expect, sync_playwright

    folder = Path(os.environ.get("DEMO_PIPELINE", folders["mixture"]))
    screenshot = Path(os.environ.get("DEMO_SCREENSHOT", tmp_path / "demo.png"))
    url = serve_folder(folder)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded")
            picker = page.get_by_role("combobox", name="Class")
            expect(picker).to_be_visible(timeout=60_000)
            picker.click()
            options = page.get_by_role("option")
            names = [options.nth(i).inner_text().strip() for i in range(options.count())]
            options.nth(1).click()  # the second class
            expect(page.get_by_role("spinbutton", name=f"number input for {names[1]}")).to_have_value("1")
            slider = page.get_by_role("slider", name=f"range slider for {names[-1]}")
            slider.focus()
            for _ in range(12):  # step 0.05: move it to 0.6
                slider.press("ArrowRight")
            expect(page.get_by_role("spinbutton", name=f"number input for {names[-1]}")).to_have_value("0.6")
            guidance = page.get_by_role("spinbutton", name="number input for Guidance scale (1 = none)")
            guidance.fill("3")
            guidance.press("Enter")
            expect(page.get_by_role("slider", name="range slider for Guidance scale (1 = none)")).to_have_value("3")
            page.get_by_role("button", name="Generate").click()
            expect(page.locator("#time-taken textarea, #time-taken input")).to_have_value(re.compile(r"\d+ images x \d+ DDIM steps in"), timeout=120_000)
            grid = page.locator("#samples img")
            page.wait_for_function("() => { const i = document.querySelector('#samples img'); return i && i.complete && i.naturalWidth > 0 }")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            shown = Image.open(io.BytesIO(grid.screenshot()))
        finally:
            browser.close()
    assert_not_blank(shown)
    assert Image.open(screenshot).size[0] == 1280
