# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""`hf-sprites`: the command-line front door (train, sample, evaluate, push, demo, convert-course-checkpoint).

Each subcommand's work is imported only when it runs, so `hf-sprites --help` stays quick. Bad input ends with one
line on stderr and exit status 1 (2 for unusable flags, as argparse does); set `HF_SPRITES_DEBUG=1` for a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLES = {
    "train": "hf-sprites train --preset sprites --train_data_dir ../shared/data/crawl-sprites --output_dir outputs/sprites",
    "sample": "hf-sprites sample outputs/sprites --class_label 0 1 2 3 --scheduler ddim --num_inference_steps 25 "
    "--seed 0 --scale 4 --output samples.png",
    "evaluate": "hf-sprites evaluate outputs/sprites --train_data_dir ../shared/data/crawl-sprites --num_samples 256",
    "push": "hf-sprites push outputs/sprites your-name/sprites-ddpm --private",
    "demo": "hf-sprites demo outputs/default --port 7860",
    "convert-course-checkpoint": "hf-sprites convert-course-checkpoint context_model_trained.pth course-sprites --context",
}
DELEGATED = ("train", "evaluate")  # these parse their own flags (see `hf-sprites train --help`)


class CommandError(Exception):
    """Bad input found by a subcommand: printed as one line, exit status 1."""


def _parser(name: str, subparsers, help_text: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {EXAMPLES[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The `hf-sprites` parser; `train` and `evaluate` are listed here but parse their own flags."""
    parser = argparse.ArgumentParser(
        prog="hf-sprites",
        description="Train, sample, evaluate, share and convert small diffusion models with diffusers.",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _parser("train", sub, "Train a model (the same flags as examples/train.py; see `hf-sprites train --help`).")
    _parser("evaluate", sub, "FID/KID and class accuracy of a pipeline (see `hf-sprites evaluate --help`).")
    _add_sample(_parser("sample", sub, "Sample a grid (.png) or a denoising GIF (.gif) from a pipeline folder or repo."))
    _add_push(_parser("push", sub, "Upload a pipeline folder to the Hub in a layout that loads without hf_sprites."))
    _add_demo(_parser("demo", sub, "Serve a Gradio app that samples a pipeline folder or repo (needs the demo extra)."))
    _add_convert(
        _parser("convert-course-checkpoint", sub, "Turn the DeepLearning.AI course's model_trained.pth or "
                "context_model_trained.pth into a pipeline folder with the course's schedule.")
    )  # fmt: skip
    return parser


def _add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="pipeline folder or Hub repo id (user/model)")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--class_label", type=int, nargs="+", help="one class per image (or one for all)")
    cond.add_argument("--context", nargs="+", metavar="V1,V2,...", help="context vectors, e.g. 1,0,0.6,0,0 (mixtures)")
    p.add_argument("--guidance_scale", type=float, default=1.0, help="classifier-free guidance scale (default 1.0: none)")
    p.add_argument("--scheduler", choices=("ddpm", "ddim", "dpm"), default="ddpm", help="ddpm keeps the model's own")
    p.add_argument("--num_inference_steps", type=int, help="default: all training steps (ddpm), 25 (ddim), 20 (dpm)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=int, help="images to sample (default: one per label/context, else 16)")
    p.add_argument("--nrow", type=int, help="images per grid row (default: a near-square grid)")
    p.add_argument("--scale", type=int, default=1, help="upscale factor for small images (nearest neighbour)")
    p.add_argument("--revision", help="branch, tag or commit of a Hub repo")
    p.add_argument("--output", default="samples.png", help="a .png/.jpg grid, or a .gif of the denoising steps")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")


def _add_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="pipeline folder (output_dir of training, or a save_pretrained folder)")
    p.add_argument("repo_id", help="Hub repo id, e.g. your-name/sprites-ddpm (created if missing)")
    p.add_argument("--token", "--hub_token", dest="token", help="Hub token (default: HF_TOKEN, then `hf auth login`)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", help="branch to push to (created when missing)")
    p.add_argument("--commit_message", help="commit message (default: 'Upload <pipeline> with hf_sprites')")
    p.add_argument("--license", help="Hub license id for the card (default: the card's own, else apache-2.0)")
    p.add_argument("--with_demo", action="store_true", help="also upload app.py + requirements.txt so the repo runs as a "
                   "Gradio Space (needs the demo extra)")  # fmt: skip


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="pipeline folder or Hub repo id (user/model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    p.add_argument("--revision", help="branch, tag or commit of a Hub repo")


def _add_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the course's .pth state dict")
    p.add_argument("output_dir", help="pipeline folder to write")
    p.add_argument("--context", action="store_true", help="write a SpritePipeline (sample by class/context)")
    p.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty output_dir")


# --- subcommands --------------------------------------------------------------------------------------------------
def run_sample(args: argparse.Namespace) -> Path:
    output = Path(args.output)
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
        raise CommandError(f"--output {output} must end in .png, .jpg, .webp (a grid) or .gif (the denoising).")
    if min(args.batch_size or 1, args.scale, args.num_inference_steps or 1) < 1:
        raise CommandError("--batch_size, --scale and --num_inference_steps must be positive integers.")
    context = _parse_contexts(args.context)
    conditions = len(args.class_label or context or [])
    batch_size = args.batch_size or (conditions if conditions > 1 else 16)
    _check_output_folder(output)

    import torch

    from hf_sprites.evaluation.sampling import as_sprite_pipeline, default_steps, swap_sampler
    from hf_sprites.hub import load_pipeline
    from hf_sprites.viz import denoising_gif, image_grid, save_atomic

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe, _ = as_sprite_pipeline(load_pipeline(args.model, revision=args.revision), device=device)
    swap_sampler(pipe, args.scheduler)
    gif = output.suffix.lower() == ".gif"
    result = pipe(
        batch_size=batch_size, class_labels=args.class_label, context=context, guidance_scale=args.guidance_scale,
        num_inference_steps=args.num_inference_steps or default_steps(pipe, args.scheduler),
        generator=torch.Generator().manual_seed(args.seed), return_intermediates=gif,
    )  # fmt: skip
    if gif:
        return denoising_gif(result.intermediates, output, nrow=args.nrow, scale=args.scale)
    return save_atomic(image_grid(result.images, nrow=args.nrow, scale=args.scale), output)


def _check_output_folder(output: Path) -> None:
    from hf_sprites.atomic import check_writable

    try:
        check_writable(output.parent)
    except OSError as err:
        raise CommandError(f"--output {output} cannot be written ({err.strerror or err}); choose another --output or "
                           f"make {output.parent} writable. Nothing was sampled.") from None


def _parse_contexts(values: list[str] | None) -> list[list[float]] | None:
    if values is None:
        return None
    try:
        return [[float(v) for v in value.split(",")] for value in values]
    except ValueError:
        raise CommandError(f"--context takes comma-separated numbers per image, e.g. 1,0,0.6,0,0; got {values}.") from None


def run_push(args: argparse.Namespace) -> str:
    from hf_sprites.hub import push_folder

    commit = push_folder(
        args.folder, args.repo_id, token=args.token, private=args.private, revision=args.revision,
        commit_message=args.commit_message, with_demo=args.with_demo, license=args.license,
    )  # fmt: skip
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{args.repo_id}"


def run_demo(args: argparse.Namespace) -> str:
    from hf_sprites.demo.serve import serve

    serve(args.model, host=args.host, port=args.port, revision=args.revision)
    return "demo stopped"


def run_convert(args: argparse.Namespace) -> Path:
    from hf_sprites.course_checkpoint import convert_course_checkpoint

    overwrite = args.overwrite_output_dir
    return convert_course_checkpoint(args.checkpoint, args.output_dir, context=args.context, overwrite=overwrite)


def run_delegated(command: str, argv: list[str]) -> None:
    if command == "train":
        from hf_sprites.training import main as train_main

        train_main(argv)
    else:
        from hf_sprites.evaluation import main as evaluate_main

        evaluate_main(argv)


RUNNERS = {"sample": run_sample, "push": run_push, "demo": run_demo, "convert-course-checkpoint": run_convert}


def main(argv: list[str] | None = None) -> int:
    """Run `hf-sprites` with `argv` (default: the process arguments); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:
            run_delegated(argv[0], argv[1:])
            return 0
        args = build_parser().parse_args(argv)
        print(RUNNERS[args.command](args))
        return 0
    except SystemExit as exit_:  # argparse: --help (0) or unusable flags (2), already reported
        return exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        print("hf-sprites: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (every failure becomes one readable line; HF_SPRITES_DEBUG for the rest)
        if os.environ.get("HF_SPRITES_DEBUG"):
            raise
        command = argv[0] if argv else "hf-sprites"
        print(f"hf-sprites {command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    expected = (CommandError, ValueError, FileNotFoundError, FileExistsError)  # their messages say it all
    return text if isinstance(err, expected) else f"{type(err).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
