"""Smoke runs of the benchmark scripts: each must execute end to end and print its JSON keys as the last line.

No timing assertions: the numbers depend on the machine. Tiny models and sizes (`--smoke`), one thread (two OpenMP
threads on a 2-core machine that is also running something else slow down by up to 10x). Without the shared
crawl-sprites folder the training benchmarks run on the embedded digits instead (`--data embedded`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CRAWL = ROOT.parent / "shared" / "data" / "crawl-sprites"
DATA = ["--data", str(CRAWL) if CRAWL.exists() else "embedded"]
RUNTIME_KEYS = {"device", "torch", "threads", "cpu", "precision", "cpu_capability", "native_bf16"}


def run_benchmark(script: str, *flags: str, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--threads", "1", *flags]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_train_throughput_smoke(tmp_path):
    result = run_benchmark("train_throughput.py", *DATA, tmp_path=tmp_path)
    assert RUNTIME_KEYS | {"course_img_per_s", "package_img_per_s", "fast_img_per_s", "ratio_package",
                           "ratio_fast", "ratio_readme"} <= set(result)
    assert result["ratio_package"] == pytest.approx(result["package_img_per_s"] / result["course_img_per_s"])
    assert {"course", "package", result["fast_variant"]} <= set(result["variants"])
    assert all(v["images"] > 0 for v in result["variants"].values())
    if CRAWL.exists():  # the README's command, run end to end under accelerate launch
        readme = result["readme"]
        assert readme["command"].startswith("accelerate launch examples/train.py --preset sprites_context_fast")
        assert readme["steps"] >= 1 and readme["img_per_s"] > 0 and readme["n_feat"] == 8  # the smoke width, passed on
        assert "usable cores" in readme["cpu_threads"]["reason"]  # accelerate's OMP_NUM_THREADS=1 was not taken


@pytest.mark.skipif(not CRAWL.exists(), reason="the README row needs ../shared/data/crawl-sprites (absent)")
def test_train_throughput_can_leave_out_the_readme_row(tmp_path):
    result = run_benchmark("train_throughput.py", *DATA, "--no_readme", tmp_path=tmp_path)
    assert result["readme"] is None and result["ratio_readme"] is None and result["course_img_per_s"] > 0


def test_a_failing_evidence_variant_is_recorded_and_a_failing_measured_one_ends_the_run(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from train_throughput import measure

    class Variant:
        device = torch.device("cpu")

        def __init__(self, name, fails=False):
            self.name, self.fails = name, fails

        def advance(self, steps):
            if self.fails:
                raise RuntimeError("cannot capture")
            return 10 * steps

    totals = measure([Variant("course"), Variant("fast_a"), Variant("fast_b", fails=True)], 2, 3, 1,
                     frozenset({"fast_b"}))
    assert totals["fast_b"] == {"error": "RuntimeError: cannot capture"}
    assert totals["course"]["images"] == totals["fast_a"]["images"] == 60 and totals["fast_a"]["img_per_s"] > 0
    with pytest.raises(RuntimeError, match="cannot capture"):
        measure([Variant("course"), Variant("fast_a", fails=True)], 1, 1, 1, frozenset())


def test_sampling_smoke(tmp_path):
    result = run_benchmark("sampling.py", "--batch_sizes", "1", "2", tmp_path=tmp_path)
    assert RUNTIME_KEYS | {"results", "ddim_b32_overhead_pct", "target_overhead_pct"} <= set(result)
    cases = {(row["sampler"], row["steps"], row["batch"]) for row in result["results"]}
    assert cases == {(s, n, b) for s, n in (("ddpm", 500), ("ddim", 25), ("dpm", 20)) for b in (1, 4)}
    assert all(row["img_per_s"] > 0 and row["unet_ms"] > 0 for row in result["results"])


def test_time_to_quality_smoke(tmp_path):
    result = run_benchmark("time_to_quality.py", *DATA, "--plot", str(tmp_path / "curve.png"), "--grids_dir",
                           str(tmp_path / "grids"), "--eval_seeds", "0", "1", tmp_path=tmp_path)
    assert RUNTIME_KEYS | {"results", "budgets_min", "seeds", "sampler", "num_samples"} <= set(result)
    assert set(result["results"]) == {"course", "package", "best"} and result["eval_seeds"] == [0, 1]
    for cell in (result["results"][name]["0.25"] for name in ("course", "package", "best")):
        assert cell["n_seeds"] == 2 and len(cell["fid"]["values"]) == 2 and cell["fid"]["std"] >= 0
        assert cell["fid"]["mean"] == pytest.approx(sum(cell["fid"]["values"]) / 2)
        assert all(steps >= 1 for steps in cell["steps"]) and cell["fid_eval_seed_std"] >= 0
    assert {r["train"]["n_feat"] for by_budget in result["runs"].values() for r in by_budget["0.25"]} == {8}
    for record in (r for by_budget in result["runs"].values() for r in by_budget["0.25"]):
        # each model scored at both evaluation seeds (other samples: other scores), its score their mean
        by_seed = record["scores_by_eval_seed"]
        assert set(by_seed) == {"0", "1"} and by_seed["0"]["fid"] != by_seed["1"]["fid"]
        assert record["scores"]["fid"] == pytest.approx((by_seed["0"]["fid"] + by_seed["1"]["fid"]) / 2)
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["best.png", "course.png", "package.png", "real.png"]
    # one curve split over processes (--seed_ids) joins back into the same result (--merge)
    halves = []
    for seed in (0, 1):
        part = {**result, "runs": {name: {b: [r for r in records if r["seed"] == seed] for b, records in by_budget.items()}
                                   for name, by_budget in result["runs"].items()}}
        halves.append(tmp_path / f"seed{seed}.json")
        halves[-1].write_text("log line\n" + json.dumps(part) + "\n")
    merged = run_benchmark("time_to_quality.py", "--merge", *map(str, halves), "--plot", str(tmp_path / "merged.png"),
                           tmp_path=tmp_path)
    assert merged["seeds"] == [0, 1]
    for name in ("course", "package", "best"):
        assert merged["results"][name]["0.25"]["fid"]["values"] == result["results"][name]["0.25"]["fid"]["values"]
    assert (tmp_path / "merged.png").stat().st_size > 0
    # the same data folder written another way joins; another folder is refused
    data = Path(result["data"])
    second = json.loads(halves[1].read_text().splitlines()[-1])
    for other, joins in ((os.path.join(data, "..", data.name), True), (str(tmp_path), False)):
        halves[1].write_text(json.dumps({**second, "data": other}) + "\n")
        joined = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--merge",
                                 *map(str, halves)], capture_output=True, text=True)
        assert (joined.returncode == 0) is joins and (joins or "['data']" in joined.stderr)
    for key, value in (("num_samples", 7), ("fid_labels", "balanced"), ("eval_seeds", [0]),
                       ("cpu_capability", "another CPU")):  # another evaluation or another kind of CPU is refused
        halves[1].write_text(json.dumps({**second, key: value}) + "\n")
        refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--merge",
                                  *map(str, halves)], capture_output=True, text=True)
        assert refused.returncode != 0 and key in refused.stderr
    twice = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--merge", str(halves[0]),
                            str(halves[0])], capture_output=True, text=True)
    assert twice.returncode != 0 and "in more than one input" in twice.stderr
    (tmp_path / "old.json").write_text(json.dumps({"results": result["results"]}) + "\n")
    old = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--merge",
                          str(tmp_path / "old.json"), str(halves[0])], capture_output=True, text=True)
    assert old.returncode != 0 and "no per-run records" in old.stderr
    (tmp_path / "running.json").write_text("a run's log, its JSON line not written yet\n")
    running = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--merge",
                              str(tmp_path / "running.json"), str(halves[0])], capture_output=True, text=True)
    assert running.returncode != 0 and "running.json does not end with a benchmark's JSON line" in running.stderr


def test_ablation_smoke(tmp_path):
    import torch

    from hf_sprites import ContextUnet

    result = run_benchmark("ablation.py", *DATA, "--conditional", "--levers", "best", "min_snr", "lr_schedule", "ema",
                           "cosine_schedule", "cosine_plain", "sigmoid_schedule", "adam_beta2", "group_norm", "narrow",
                           "higher_lr", "label_dropout",
                           "--grids_dir", str(tmp_path / "grids"), "--save_models_dir", str(tmp_path / "models"),
                           tmp_path=tmp_path)
    assert RUNTIME_KEYS | {"results", "runs", "table", "levers"} <= set(result)
    variants = {"best", "without_min_snr", "without_lr_schedule", "with_ema", "with_cosine_schedule", "without_narrow",
                "with_higher_lr", "with_cosine_plain", "with_sigmoid_schedule", "with_adam_beta2",
                "with_group_norm", "without_label_dropout"}
    assert set(result["table"]) == variants
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == sorted(f"{v}.png" for v in variants | {"real"})
    # each variant trained with its lever set back to the faithful preset's value, or (a lever the recipe leaves out)
    # added, read from the run's own config
    (ema_run,) = result["runs"]["with_ema"]["0.25"]
    assert ema_run["train"]["lever_values"] == {"use_ema": True, "ema_max_decay": 0.999, "ema_power": 0.75}
    (cosine_run,) = result["runs"]["with_cosine_schedule"]["0.25"]
    assert cosine_run["train"]["lever_values"] == {"ddpm_beta_schedule": "squaredcos_cap_v2"}
    (plain_run,) = result["runs"]["with_cosine_plain"]["0.25"]
    assert plain_run["train"]["lever_values"] == {"ddpm_beta_schedule": "squaredcos_cap_v2", "snr_gamma": None}
    (sigmoid_run,) = result["runs"]["with_sigmoid_schedule"]["0.25"]
    assert sigmoid_run["train"]["lever_values"] == {"ddpm_beta_schedule": "sigmoid"}
    (beta2_run,) = result["runs"]["with_adam_beta2"]["0.25"]
    assert beta2_run["train"]["lever_values"] == {"adam_beta2": pytest.approx(0.99)}
    (group_norm_run,) = result["runs"]["with_group_norm"]["0.25"]
    assert group_norm_run["train"]["lever_values"] == {"block_norm": "group"}
    (dropout_run,) = result["runs"]["without_label_dropout"]["0.25"]
    assert dropout_run["train"]["lever_values"] == {"cond_drop_prob": pytest.approx(0.1)}
    kept = ContextUnet.from_pretrained(tmp_path / "models" / "with_group_norm-0.25min-seed0" / "unet")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in kept.modules())  # and the model scored has none
    (wide_run,) = result["runs"]["without_narrow"]["0.25"]  # the width reaches the run past the benchmark's own flag
    assert wide_run["train"]["lever_values"] == {"n_feat": 64} and wide_run["train"]["n_feat"] == 64
    assert result["n_feat"] == 8 and result["runs"]["best"]["0.25"][0]["train"]["n_feat"] == 8
    (snr_run,) = result["runs"]["without_min_snr"]["0.25"]
    assert snr_run["train"]["lever_values"] == {"snr_gamma": None}
    (lr_run,) = result["runs"]["without_lr_schedule"]["0.25"]
    assert lr_run["train"]["lever_values"]["lr_scheduler"] == "course"
    assert lr_run["train"]["lever_values"]["learning_rate"] == pytest.approx(1e-3)
    (high_lr_run,) = result["runs"]["with_higher_lr"]["0.25"]
    assert high_lr_run["train"]["lever_values"] == {"learning_rate": pytest.approx(4e-3)}
    # --save_models_dir keeps every scored model as a pipeline folder that loads again, at the width it trained at
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(f"{v}-0.25min-seed0" for v in variants)
    from hf_sprites.pipelines import SpritePipeline

    kept = {v: SpritePipeline.from_pretrained(tmp_path / "models" / f"{v}-0.25min-seed0")
            for v in ("best", "without_narrow", "with_cosine_schedule", "with_sigmoid_schedule")}
    assert kept["best"].unet.config.n_feat == 8 and kept["without_narrow"].unet.config.n_feat == 64
    # each model was scored, and kept, with the noise schedule it trained with
    assert type(kept["best"].scheduler).__name__ == "SpriteScheduler"
    assert kept["with_cosine_schedule"].scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert kept["with_sigmoid_schedule"].scheduler.config.beta_schedule == "sigmoid"
    assert kept["best"].unet.config.n_cfeat == 5 or not CRAWL.exists()
    table = result["table"]
    assert table["without_min_snr"]["fid_change_vs_best"] == pytest.approx(
        table["without_min_snr"]["fid"]["mean"] - table["best"]["fid"]["mean"])
    paired = table["without_min_snr"]["fid_change_by_seed"]  # one seed: the same number, seed by seed
    assert paired["n"] == 1 and paired["mean"] == pytest.approx(table["without_min_snr"]["fid_change_vs_best"])
    # lanes join with --merge; another budget's runs are refused by name
    lane = tmp_path / "lane.json"
    lane.write_text(json.dumps(result) + "\n")
    merged = run_benchmark("ablation.py", "--merge", str(lane), "--budget", "0.25", tmp_path=tmp_path)
    assert merged["table"] == table
    indented = tmp_path / "indented.json"  # a result saved indented, as some in benchmarks/results/ are
    indented.write_text(json.dumps(result, indent=1) + "\n")
    assert run_benchmark("ablation.py", "--merge", str(indented), "--budget", "0.25", tmp_path=tmp_path)["table"] == table
    other = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "--merge", str(lane), "--budget",
                            "10"], capture_output=True, text=True)
    assert other.returncode != 0 and "at 10 min" in other.stderr
    # lanes that ran different levers: the merged result lists every lane's levers, not only the first's
    lanes = []
    for i, names in enumerate((["best"], [v for v in result["runs"] if v != "best"])):
        part = {**result, "runs": {v: result["runs"][v] for v in names},
                "levers": [lever for lever in result["levers"] if (lever == "best") == (names == ["best"])]}
        lanes.append(tmp_path / f"part{i}.json")
        lanes[-1].write_text(json.dumps(part) + "\n")
    joined = run_benchmark("ablation.py", "--merge", *map(str, lanes), "--budget", "0.25", tmp_path=tmp_path)
    assert joined["table"] == table and sorted(joined["levers"]) == sorted(result["levers"])


def test_save_models_dir_refused_before_training(tmp_path):
    """A --save_models_dir that cannot be written fails at start, naming the flag, not after the runs."""
    (tmp_path / "a_file").write_text("not a folder")
    for script in ("ablation.py", "time_to_quality.py"):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--threads", "1", *DATA,
                               "--save_models_dir", str(tmp_path / "a_file" / "models")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode != 0 and "--save_models_dir" in done.stderr and "writable folder" in done.stderr
        assert "Time budget" not in done.stderr  # no training started


def tiny_kept_model(path: Path):
    """A small untrained ContextUnet pipeline folder shaped for the benchmark data (as `--save_models_dir` keeps)."""
    import torch

    from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler

    size, channels, classes = (16, 3, 5) if CRAWL.exists() else (8, 1, 10)
    torch.manual_seed(0)
    unet = ContextUnet(sample_size=size, in_channels=channels, out_channels=channels, n_feat=8, n_cfeat=classes)
    SpritePipeline(unet=unet.eval(), scheduler=SpriteScheduler()).save_pretrained(path)
    return path


def test_sampler_variants_smoke(tmp_path):
    """Each variant is scored on the same model beside the model as saved; its change is the paired difference."""
    model = str(tiny_kept_model(tmp_path / "model"))
    variants = ["spacing=leading", "guidance_rescale=0.7", "precise_bn=3", "guidance=4"]
    result = run_benchmark("sampler_variants.py", model, *DATA, "--conditional", "--guidance_scale", "2",
                           "--variants", *variants, tmp_path=tmp_path)
    assert RUNTIME_KEYS | {"models", "table", "variants"} <= set(result) and result["variants"] == variants
    scores = result["models"][model]
    for variant in variants:
        # each changes how the samples are made, so each scores otherwise than the model as saved
        assert scores["variants"][variant]["fid"] != scores["as_saved"]["fid"]
        row = result["table"][variant]
        assert row["fid_change"]["values"] == [pytest.approx(scores["variants"][variant]["fid"] - scores["as_saved"]["fid"])]
        assert 0 <= row["class_accuracy"] <= 1
    from hf_sprites.pipelines import SpritePipeline

    # the model folder itself is left as it was: precise_bn changed a copy's statistics, not the saved ones
    saved = SpritePipeline.from_pretrained(model).unet
    assert all(float(m.running_var.mean()) == 1.0 for m in saved.modules() if hasattr(m, "running_var"))
    for bad, word in (("spacing=sideways", "spacing is one of"), ("guidance_rescale=2", "in [0, 1]"),
                      ("temperature=1", "is not one of"), ("guidance=0.5", "guidance is >= 1")):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampler_variants.py"), model, "--variants",
                               "spacing=leading", bad], capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and word in done.stderr and bad in done.stderr
    # a model without BatchNorm (UNet2DModel: GroupNorm) cannot have its statistics recomputed: refused, not a no-op
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    plain = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=8,
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    DDPMPipeline(unet=plain, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "plain")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampler_variants.py"), str(tmp_path / "plain"),
                           "--variants", "precise_bn=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "has no BatchNorm layer" in done.stderr
    # guidance on a model scored without labels would be ignored: refused, not a no-op
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampler_variants.py"), model, "--variants",
                           "guidance=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needs --conditional" in done.stderr
    (tmp_path / "empty").mkdir()  # a folder that holds no pipeline: one line naming it, no traceback
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampler_variants.py"), str(tmp_path / "empty"),
                           "--variants", "spacing=leading"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "is not a pipeline folder" in done.stderr and "Traceback" not in done.stderr
