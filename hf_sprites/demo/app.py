# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The demo app: a Gradio page that samples a pipeline by class, context mixture, guidance, sampler, steps and seed.

This file imports nothing from hf_sprites, so the same code serves two places:

- `hf-sprites demo FOLDER_OR_REPO` builds `SpriteDemo` over a pipeline loaded with the package's own classes;
- `hf-sprites push --with_demo` copies this file as the `app.py` of the pushed repo, where `python app.py` (what a
  Hugging Face Space runs) loads the folder it lies in as remote code: `DiffusionPipeline.from_pretrained(folder,
  custom_pipeline="sprite_pipeline", trust_remote_code=True)`, with no hf_sprites installed.

Every pipeline is sampled through `SpritePipeline` (the package's, or the repo's `sprite_pipeline.py`), which gives
class labels, mixtures, guidance and the denoising frames for any unet. Gradio is imported only when a page is built.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.utils import make_image_grid
from huggingface_hub import ModelCard
from PIL import Image, ImageOps

#: The most work one request may ask for, in images x denoising steps: seconds, not minutes, on a small CPU.
MAX_IMAGE_STEPS = 4_000
MAX_BATCH_SIZE = 64
MAX_GIF_FRAMES = 40
DISPLAY_PIXELS, GAP = 96, 2  # each sample is upscaled (nearest neighbour) to about 96 px and framed by 2 white px
GIF_FRAME_MS, GIF_HOLD_MS = 80, 1500  # each denoising frame; the last one
TRAINED = "DDPM"  # a noise predictor's own scheduler; other models offer theirs by class name
SAMPLERS = {TRAINED: None, "DDIM": DDIMScheduler, "DPM-Solver": DPMSolverMultistepScheduler}
DEFAULT_STEPS = {"DDIM": 25, "DPM-Solver": 20}  # DDPM: every training step
CARD_KEY = "hf_sprites"  # the model card's metadata key holding the card inputs, `class_names` among them
RECORD_FILE = "training_config.json"  # beside the card: what it was rendered from (hf_sprites.hub.card_data)


def read_class_names(folder: str | Path) -> list[str] | None:
    """The class names the folder's model card was written with: `training_config.json` beside the card (what
    hf_sprites writes), else the `hf_sprites:` key of an older card's front matter; None when neither records any.

    ```py
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "training_config.json").write_text(json.dumps({"class_names": ["hero", "food"]}))
    >>> read_class_names(folder)
    ['hero', 'food']

    ```
    """
    record, readme = Path(folder) / RECORD_FILE, Path(folder) / "README.md"
    if record.is_file():
        inputs = json.loads(record.read_text(encoding="utf-8"))
    elif readme.is_file():
        inputs = ModelCard.load(readme).data.to_dict().get(CARD_KEY)
    else:
        return None
    names = inputs.get("class_names") if isinstance(inputs, dict) else None
    return [str(name) for name in names] if names else None


def load_space_pipeline(folder: str | Path) -> tuple[DiffusionPipeline, bool]:
    """Load a pushed repo's folder as remote code, sampled through its `sprite_pipeline.py`; also say if conditional."""
    folder = Path(folder)
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{folder} has no model_index.json: put app.py in the folder of a pushed pipeline.")
    if not (folder / "sprite_pipeline.py").is_file():
        raise FileNotFoundError(
            f"{folder} has no sprite_pipeline.py, which app.py samples with. Push the model with "
            "`hf-sprites push FOLDER REPO --with_demo`, which adds it."
        )
    pipe = DiffusionPipeline.from_pretrained(folder, custom_pipeline="sprite_pipeline", trust_remote_code=True)
    saved_as = json.loads(index_file.read_text(encoding="utf-8"))["_class_name"]
    return pipe, (saved_as[-1] if isinstance(saved_as, list) else saved_as) == "SpritePipeline"


@dataclass
class Request:
    """What one press of Generate asks for."""

    sampler: str | None = None  # None: the model's own scheduler
    steps: int = 25
    seed: int = 0
    batch_size: int = 16
    class_index: int | None = None  # models with class embeddings
    mixture: list[float] | None = None  # models with a context input (one weight per class)
    guidance_scale: float = 1.0


@dataclass
class Result:
    """A grid of the samples, the path of the denoising GIF, and a line saying what ran and how long it took."""

    grid: Image.Image
    gif_path: str
    summary: str


class SpriteDemo:
    """The app over one pipeline; `conditional` says whether it was saved as a SpritePipeline (trained with labels).

    A conditional model with a context input (ContextUnet) gets a class picker, one mixture slider per class and a
    guidance scale; one with class embeddings gets the class picker only; unconditional ones get neither.

    ```py
    >>> from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
    >>> demo = SpriteDemo(SpritePipeline(ContextUnet(n_feat=8, n_cfeat=3), SpriteScheduler()), conditional=True)
    >>> demo.conditioning, demo.class_names, demo.samplers
    ('mixture', ['class 0', 'class 1', 'class 2'], ['DDPM', 'DDIM', 'DPM-Solver'])
    >>> result = demo.sample(Request(sampler="DDIM", steps=3, batch_size=2, mixture=[1, 0, 0.5]))
    >>> result.grid.size, result.gif_path.endswith(".gif")
    ((200, 100), True)

    ```
    """

    def __init__(self, pipe, conditional: bool, class_names: list[str] | None = None, title: str = "hf_sprites demo"):
        self.pipe, self.title = pipe.to("cpu"), title
        self.pipe.set_progress_bar_config(disable=False, leave=False)  # Gradio's progress bar follows tqdm
        self.trained_scheduler = pipe.scheduler
        self.conditioning = self._conditioning(conditional)
        n = pipe.num_classes or 0
        if class_names is not None and len(class_names) != n:
            raise ValueError(f"{len(class_names)} class names given for a model with {n} classes; pass {n} names.")
        self.names_recorded = class_names is not None
        self.class_names = list(class_names) if class_names else [f"class {i}" for i in range(n)]
        predicts_noise = self.trained_scheduler.config.get("prediction_type", "epsilon") != "sample"
        self.samplers = list(SAMPLERS) if predicts_noise else [type(self.trained_scheduler).__name__]
        self.train_steps = int(self.trained_scheduler.config.num_train_timesteps)
        self.gif_dir = Path(tempfile.mkdtemp(prefix="hf_sprites_demo_"))

    def _conditioning(self, conditional: bool) -> str:
        if not conditional or not self.pipe.num_classes:
            return "none"
        return "mixture" if self.pipe.takes_context else "class"

    def default_steps(self, sampler: str) -> int:
        """Steps a sampler customarily takes: every training step for the trained sampler, 25 DDIM, 20 DPM-Solver."""
        return DEFAULT_STEPS.get(sampler, self.train_steps)

    def default_request(self) -> Request:
        """What the page shows first: DDIM when it applies, and a batch that fits `MAX_IMAGE_STEPS`."""
        sampler = "DDIM" if "DDIM" in self.samplers else self.samplers[0]
        steps = self.default_steps(sampler)
        return Request(sampler=sampler, steps=steps, batch_size=max(1, min(16, MAX_IMAGE_STEPS // steps)))

    def describe(self) -> str:
        """One paragraph on the model and the controls that apply to it."""
        unet, scheduler = self.pipe.unet.config, self.trained_scheduler
        size = f"{unet.sample_size}x{unet.sample_size}" if isinstance(unet.sample_size, int) else str(unet.sample_size)
        text = (
            f"`{type(self.pipe.unet).__name__}` + `{type(scheduler).__name__}` ({self.train_steps} training steps), "
            f"{size} px, {unet.in_channels} channel(s). "
        )
        if self.conditioning == "none":
            return text + "An unconditional model: no class, mixture or guidance to choose."
        names = "from the model card" if self.names_recorded else "not recorded in the model card, so numbered"
        text += f"{len(self.class_names)} classes (names {names}). "
        if self.conditioning == "class":
            return text + "Class embeddings: pick a class (no mixtures or guidance without a context input)."
        return text + "Pick a class to set the mixture, then move the sliders to blend classes; all zero is the null context."

    def check(self, request: Request) -> None:
        """Refuse a request that does not fit this model or would take too long, with the fix in the message."""
        if request.sampler is not None and request.sampler not in self.samplers:
            raise ValueError(f"Sampler {request.sampler!r} does not apply to this model; choose one of {self.samplers}.")
        if not 1 <= request.batch_size <= MAX_BATCH_SIZE or request.steps < 1:
            raise ValueError(f"Batch size must be 1..{MAX_BATCH_SIZE} and steps at least 1.")
        work = request.batch_size * request.steps
        if work > MAX_IMAGE_STEPS:
            raise ValueError(
                f"{request.batch_size} images x {request.steps} steps = {work:,} denoising steps, over this demo's limit "
                f"of {MAX_IMAGE_STEPS:,}. Lower the batch size or the steps (DDIM or DPM-Solver need only 20-25)."
            )
        if request.mixture is not None and len(request.mixture) != len(self.class_names):
            raise ValueError(f"The mixture needs {len(self.class_names)} weights, one per class.")

    def conditioning_kwargs(self, request: Request) -> dict:
        """The pipeline arguments for the request's class, mixture and guidance (none for unconditional models)."""
        if self.conditioning == "mixture":
            mixture = request.mixture if request.mixture is not None else [0.0] * len(self.class_names)
            return {"context": [list(map(float, mixture))], "guidance_scale": float(request.guidance_scale)}
        if self.conditioning == "class":
            return {"class_labels": [int(request.class_index or 0)]}
        return {}

    def use_sampler(self, sampler: str) -> None:
        """Sample with the trained scheduler, or with DDIM / DPM-Solver built from its config (the keys they take)."""
        target = SAMPLERS.get(sampler)
        if target is None:
            self.pipe.scheduler = self.trained_scheduler
            return
        accepted = inspect.signature(target.__init__).parameters
        self.pipe.scheduler = target.from_config({k: v for k, v in self.trained_scheduler.config.items() if k in accepted})

    def sample(self, request: Request) -> Result:
        """Run one request: the grid, the GIF of the denoising (at most `MAX_GIF_FRAMES` frames) and the time taken."""
        self.check(request)
        sampler = request.sampler or self.samplers[0]
        self.use_sampler(sampler)
        start = time.perf_counter()
        out = self.pipe(
            batch_size=request.batch_size, num_inference_steps=request.steps, return_intermediates=True,
            generator=torch.Generator().manual_seed(int(request.seed)), **self.conditioning_kwargs(request),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        frames = out.intermediates
        picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), MAX_GIF_FRAMES)).round().astype(int))
        gif = [self.grid(self.pipe.numpy_to_pil(frames[i].permute(0, 2, 3, 1).numpy())) for i in picks]
        for old in self.gif_dir.glob("*.gif"):  # Gradio keeps its own copy of what it served
            old.unlink(missing_ok=True)
        gif_path = str(self.gif_dir / f"denoising-{uuid.uuid4().hex[:8]}.gif")
        durations = [GIF_FRAME_MS] * (len(gif) - 1) + [GIF_HOLD_MS]
        gif[0].save(gif_path, save_all=True, append_images=gif[1:], duration=durations, loop=0)
        summary = f"{request.batch_size} images x {request.steps} {sampler} steps in {seconds:.1f} s (CPU)"
        return Result(self.grid(out.images), gif_path, summary)

    @staticmethod
    def grid(images: list[Image.Image]) -> Image.Image:
        """A near-square grid of the samples, each upscaled (nearest neighbour) to about `DISPLAY_PIXELS`, framed in white."""
        scale = max(1, DISPLAY_PIXELS // images[0].width)
        size = (images[0].width * scale, images[0].height * scale)
        tiles = [ImageOps.expand(image.convert("RGB").resize(size, Image.NEAREST), border=GAP, fill="white") for image in images]
        cols = math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / cols)
        blank = Image.new("RGB", tiles[0].size, "white")
        return make_image_grid(tiles + [blank] * (rows * cols - len(tiles)), rows=rows, cols=cols)

    def blocks(self):
        """The Gradio page: the controls that apply to this model, Generate, the grid, the GIF and the time taken.

        Its endpoints: `/generate` (the controls in page order -> grid, GIF, summary), and where they apply
        `/pick_class` (a class -> its one-hot mixture) and `/sampler_steps` (a sampler -> its customary steps).
        """
        import gradio as gr  # noqa: PLC0415  (Gradio is needed only to serve a page)

        first = self.default_request()
        with gr.Blocks(title=self.title, analytics_enabled=False, delete_cache=(3600, 3600)) as page:
            gr.Markdown(f"# {self.title}\n{self.describe()}")
            with gr.Row():
                with gr.Column(scale=1):
                    picker, controls = self._condition_controls(gr)
                    if len(self.samplers) > 1:
                        controls["sampler"] = gr.Radio(self.samplers, value=first.sampler, label="Sampler")
                    steps = gr.Slider(1, self.train_steps, value=first.steps, step=1, label="Steps")
                    seed = gr.Number(first.seed, precision=0, label="Seed")
                    batch = gr.Slider(1, MAX_BATCH_SIZE, value=first.batch_size, step=1, label="Batch size")
                    button = gr.Button("Generate", variant="primary")
                with gr.Column(scale=2):
                    grid = gr.Image(label="Samples", type="pil", format="png", interactive=False, elem_id="samples")
                    gif = gr.Image(label="Denoising", type="filepath", interactive=False, elem_id="denoising")
                    summary = gr.Textbox(label="Time taken", interactive=False, elem_id="time-taken")
            controls.update(steps=steps, seed=seed, batch_size=batch)
            if "sampler" in controls:
                controls["sampler"].change(self.default_steps, controls["sampler"], steps, api_name="sampler_steps")
            if "mixture" in controls:
                picker.change(self.one_hot, picker, controls["mixture"], api_name="pick_class")
            pairs = [(name, c) for name, control in controls.items() for c in (control if isinstance(control, list) else [control])]
            names, inputs = [name for name, _ in pairs], [component for _, component in pairs]

            def generate(*values_then_progress):  # Gradio passes the controls, then the Progress that follows tqdm
                try:
                    result = self.sample(self.request(names, values_then_progress[:-1]))
                except ValueError as err:
                    raise gr.Error(str(err), print_exception=False) from None
                return result.grid, result.gif_path, result.summary

            generate.__signature__ = api_signature(names, gr.Progress(track_tqdm=True))
            button.click(generate, inputs, [grid, gif, summary], api_name="generate", concurrency_limit=1)
        return page

    def _condition_controls(self, gr) -> tuple:
        """The class picker and the conditioning inputs of Generate (with a context input, the class sets the mixture)."""
        if self.conditioning == "none":
            return None, {}
        picker = gr.Dropdown(self.class_names, value=self.class_names[0], type="index", label="Class")
        if self.conditioning == "class":
            return picker, {"class_index": picker}
        with gr.Accordion("Context mixture: one weight per class", open=True):
            sliders = [gr.Slider(0, 1, value=self.one_hot(0)[i], step=0.05, label=name) for i, name in enumerate(self.class_names)]
        guidance = gr.Slider(0, 8, value=1, step=0.5, label="Guidance scale (1 = none)")
        return picker, {"mixture": sliders, "guidance_scale": guidance}

    def one_hot(self, class_index: int) -> list[float]:
        """The mixture of one class: weight 1 for it, 0 for the others."""
        return [float(i == class_index) for i in range(len(self.class_names))]

    def request(self, names: list[str], values) -> Request:
        """A `Request` from the page's control values (`names[i]` is the `Request` field of `values[i]`)."""
        fields: dict = {}
        for name, value in zip(names, values):
            if name == "mixture":
                fields.setdefault("mixture", []).append(float(value))
            else:
                fields[name] = value
        try:
            fields.update({name: int(fields[name]) for name in ("steps", "seed", "batch_size")})
        except (TypeError, ValueError):
            raise ValueError("Steps, seed and batch size must be whole numbers; fill in each of them.") from None
        return Request(**fields)

    def launch(self, server_name: str | None = None, server_port: int | None = None, **kwargs):
        """Build the page, serve it and return it (on a Space, Gradio takes the address from its environment)."""
        page = self.blocks()
        page.launch(server_name=server_name, server_port=server_port, **kwargs)
        return page


def api_signature(names: list[str], progress) -> inspect.Signature:
    """The signature Gradio reads for `/generate`: one parameter per control (mixture weights numbered), then progress."""
    numbered = [f"{name}_{names[:i].count(name)}" if names.count(name) > 1 else name for i, name in enumerate(names)]
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in numbered]
    return inspect.Signature([*params, inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=progress)])


if __name__ == "__main__":  # a Space (or `python app.py`) in a pushed repo
    here = Path(__file__).resolve().parent
    pipeline, saved_conditional = load_space_pipeline(here)
    SpriteDemo(pipeline, saved_conditional, read_class_names(here), title=os.environ.get("SPACE_ID", here.name)).launch()
