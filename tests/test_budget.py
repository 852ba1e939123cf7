"""Budget-sized training: the plan of a run that is given minutes rather than epochs, the CPU threads a run uses,
the presets built on them, and the errors a budget raises before any work."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline
from tqdm.auto import tqdm

from hf_sprites.data import make_batches
from hf_sprites.pipelines import SpritePipeline
from hf_sprites.training import main, parse_train_args
from hf_sprites.training.builders import (adopt_plan, build_lr_scheduler, build_optimizer, build_run, load_source,
                                         make_accelerator)
from hf_sprites.training.config import TrainConfigError
from hf_sprites.training.health import Health
from hf_sprites.training.loop import (PREVIEW_PROBE_STEPS, Meter, after_update, measure_preview_seconds,
                                      measure_step_seconds, replan_budget)
from hf_sprites.training.plan import (MIN_STEPS_TO_REPLAN, OMP_WAIT_REASON_VAR, PREVIEW_SHARE, REPLAN_SHARE,
                                      SECOND_REPLAN_SHARE, choose_cpu_threads, describe_omp_wait_policy,
                                      evenly_spaced, plan_for_budget, plan_for_length, replan, resolve_mixed_precision,
                                      usable_cores)

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "--model", "context_unet", "--n_feat", "8", "--resolution", "8", "--train_batch_size", "8",
    "--ddpm_num_inference_steps", "3", "--eval_batch_size", "4", "--logger", "none", "--logging_steps", "1",
    "--seed", "0", "--save_model_epochs", "1000", "--cpu_threads", "1", "--in_channels", "3",
]


# --- the plan --------------------------------------------------------------------------------------------------------


def test_a_budget_plan_fills_what_is_left_after_set_up_and_previews():
    plan = plan_for_budget(budget_s=100, elapsed_s=10, step_s=0.1, preview_s=2.0, steps_per_epoch=10)
    previews = len(plan.preview_steps) * plan.preview_s
    assert plan.total_steps * 0.1 + previews <= 0.95 * 90 + 1e-9 < (plan.total_steps + 1) * 0.1 + previews  # as many as fit
    assert len(plan.preview_steps) == 3 and plan.num_epochs == 80
    gaps = np.diff([0, *plan.preview_steps, plan.total_steps])
    assert gaps.max() - gaps.min() <= 1  # spread evenly through the run


def test_previews_take_at_most_their_share_of_the_budget():
    for preview_s in (0.5, 3.0, 4.0, 9.0, 11.0):
        plan = plan_for_budget(budget_s=100, elapsed_s=0, step_s=0.1, preview_s=preview_s, steps_per_epoch=10)
        assert len(plan.preview_steps) * preview_s <= PREVIEW_SHARE * 100
    assert plan.preview_steps == ()  # one preview would take 11 % of the budget


def test_a_budget_that_leaves_no_step_is_refused():
    with pytest.raises(ValueError, match="room for no training step.*--time_budget_minutes"):
        plan_for_budget(budget_s=5, elapsed_s=6, step_s=0.1, preview_s=1.0, steps_per_epoch=10)


def test_a_run_replans_the_rest_from_the_pace_of_its_own_steps():
    plan = plan_for_budget(budget_s=100, elapsed_s=10, step_s=0.1, preview_s=2.0, steps_per_epoch=10)
    assert plan.replan_step == round(REPLAN_SHARE * plan.total_steps)
    done, elapsed = plan.replan_step, 10 + plan.replan_step * 0.08
    faster = replan(plan, done_steps=done, elapsed_s=elapsed, step_s=0.08)
    previews = len(faster.preview_steps) * 2.0
    left = 0.95 * (100 - elapsed)  # the remaining steps and previews fill what is left, as the first plan did
    assert (faster.total_steps - done) * 0.08 + previews <= left < (faster.total_steps - done + 1) * 0.08 + previews
    assert faster.total_steps > plan.total_steps and faster.num_epochs == -(-faster.total_steps // 10)
    assert len(faster.preview_steps) == 3 and min(faster.preview_steps) > done
    assert (faster.replanned_at, faster.initial_total_steps, faster.initial_step_s, faster.step_s) \
        == (done, plan.total_steps, 0.1, 0.08)  # the record says what changed
    assert faster.replan_step == round(SECOND_REPLAN_SHARE * faster.total_steps) and faster.replanned_again_at is None
    # the second re-plan, past the first preview: it keeps that one, and the two still to come are spread over the
    # new length
    again_at = faster.replan_step
    (written,) = [step for step in faster.preview_steps if step <= again_at]
    last = replan(faster, done_steps=again_at, elapsed_s=elapsed + (again_at - done) * 0.08 + 2.0, step_s=0.07)
    assert last.total_steps > faster.total_steps and last.preview_steps[0] == written
    assert len(last.preview_steps) == 3 and last.preview_steps[1] > again_at
    assert last.preview_steps[1:] == tuple(s for s in evenly_spaced(last.total_steps, 3) if s > again_at)
    assert (last.replan_step, last.replanned_at, last.replanned_again_at, last.initial_total_steps,
            last.initial_step_s, last.step_s) == (None, done, again_at, plan.total_steps, 0.1, 0.07)  # twice, no more
    slower = replan(plan, done_steps=done, elapsed_s=10 + done * 0.12, step_s=0.12)
    assert slower.total_steps < plan.total_steps
    assert replan(plan, done_steps=done, elapsed_s=99.9, step_s=0.1).total_steps == done + 1  # at least one more


def test_a_short_budgeted_run_keeps_its_first_plan():
    plan = plan_for_budget(budget_s=10, elapsed_s=0, step_s=0.5, preview_s=0.0, steps_per_epoch=10)
    assert plan.total_steps < MIN_STEPS_TO_REPLAN and plan.replan_step is None
    short = plan_for_budget(budget_s=10, elapsed_s=0, step_s=0.25, preview_s=0.0, steps_per_epoch=10)  # 38 steps
    later = replan(short, done_steps=short.replan_step, elapsed_s=1, step_s=0.25)
    assert later.replanned_at == short.replan_step and later.replan_step is None  # a second one: too few steps apart


def test_a_fixed_run_previews_at_the_end_of_every_nth_epoch():
    plan = plan_for_length(6, 4, accumulation=1, max_train_steps=None, save_images_epochs=1)
    assert (plan.total_steps, plan.preview_steps) == (24, (6, 12, 18))
    assert plan_for_length(6, 4, accumulation=1, max_train_steps=None, save_images_epochs=10).preview_steps == ()


def test_the_lr_schedule_warms_up_and_decays_over_exactly_the_planned_steps():
    cfg = parse_train_args(["--lr_scheduler", "cosine", "--lr_warmup_ratio", "0.1", "--learning_rate", "1e-3"])
    plan = plan_for_budget(budget_s=60, elapsed_s=0, step_s=0.05, preview_s=1.0, steps_per_epoch=7)
    optimizer = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    schedule = build_lr_scheduler(cfg, optimizer, plan)
    rates = []
    for _ in range(plan.total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    warmup = round(0.1 * plan.total_steps)
    assert rates.index(max(rates)) == warmup and max(rates) == pytest.approx(1e-3)
    assert rates[-1] < 1e-3 * 1e-4 and optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_auto_precision_is_bf16_only_where_the_machine_computes_it():
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported()
    assert resolve_mixed_precision("auto") == ("bf16" if native else "no")
    assert resolve_mixed_precision("fp16") == "fp16"


# --- threads ---------------------------------------------------------------------------------------------------------


def test_an_explicit_thread_choice_wins_and_accelerates_default_does_not_count():
    assert choose_cpu_threads(3, env={"OMP_NUM_THREADS": "1", "ACCELERATE_DYNAMO_BACKEND": "NO"}).threads == 3
    assert choose_cpu_threads(None, env={"OMP_NUM_THREADS": "1"}).reason == "OMP_NUM_THREADS"
    auto = choose_cpu_threads(None, local_processes=1, env={})
    assert auto.threads == usable_cores() and "usable cores" in auto.reason
    assert choose_cpu_threads(None, local_processes=2 * usable_cores(), env={}).threads == 1
    assert choose_cpu_threads(None, env={"OMP_NUM_THREADS": " "}).threads == usable_cores()  # empty = unset, as OpenMP
    for bad in ("two", "0", "-1"):
        with pytest.raises(ValueError, match="OMP_NUM_THREADS=.* is not a positive whole number"):
            choose_cpu_threads(None, env={"OMP_NUM_THREADS": bad})


def _train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", REPO / "examples" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not as __main__: defines the functions, chooses nothing
    return module


def test_examples_train_waits_passively_only_when_other_work_keeps_the_cpus_busy():
    script = _train_script()
    assert script.BUSY_CPUS == 0.5  # the README's "half a CPU"
    assert script.WAIT_REASON_VAR == OMP_WAIT_REASON_VAR  # the script sets the variable the package reads
    choose = script.choose_omp_wait_policy
    assert choose({}, busy_cpus=0.6, cpus=2) == ("PASSIVE", "other work kept 0.6 of 2 CPUs busy at start")
    assert choose({}, busy_cpus=0.4, cpus=2) == (None, "other work kept 0.4 of 2 CPUs busy at start")
    assert choose({"OMP_WAIT_POLICY": "ACTIVE"}, busy_cpus=2.0, cpus=2) == (None, "OMP_WAIT_POLICY set before start")
    assert describe_omp_wait_policy({}) == "OpenMP's default (not set)"  # `hf-sprites train`: OpenMP as it finds it


def test_a_run_of_examples_train_records_the_wait_policy_it_chose(sprite_arrays, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(REPO / "examples" / "train.py"), *TINY, "--train_data_dir",
                           str(sprite_arrays), "--output_dir", str(out), "--max_train_steps", "2"],
                          env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = json.loads((out / "trainer_state.json").read_text())["cpu_threads"]["omp_wait_policy"]
    busy = float(recorded.split("other work kept ")[1].split(" of ")[0])  # what the script measured at start
    assert recorded.startswith("PASSIVE (" if busy >= 0.5 else "OpenMP's default (")
    assert recorded.endswith("CPUs busy at start)")
    assert f"OpenMP waiting: {recorded}." in done.stderr  # and logged at the start


SHOW_THREADS = textwrap.dedent("""
    from hf_sprites.training.plan import choose_cpu_threads
    choice = choose_cpu_threads(None)
    print("CHOICE", choice.threads, choice.reason)
""")


def _launch(tmp_path, launch_args=(), env=None) -> str:
    script = tmp_path / "show_threads.py"
    script.write_text(SHOW_THREADS)
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *launch_args, str(script)],
                         env={**base, **(env or {})}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return next(line for line in out.stdout.splitlines() if line.startswith("CHOICE"))


def test_under_accelerate_launch_the_run_uses_the_cores_unless_the_user_chose(tmp_path):
    assert _launch(tmp_path).startswith(f"CHOICE {usable_cores()} ")
    assert _launch(tmp_path, env={"OMP_NUM_THREADS": "1"}) == "CHOICE 1 OMP_NUM_THREADS set before accelerate launch"
    assert _launch(tmp_path, ["--num_cpu_threads_per_process", "1"]) == (
        "CHOICE 1 accelerate launch --num_cpu_threads_per_process")


# --- budgeted runs ---------------------------------------------------------------------------------------------------


def test_measuring_the_step_time_leaves_the_run_as_it_was(sprite_arrays, tmp_path):
    cfg = parse_train_args([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(tmp_path / "o"),
                            "--max_train_steps", "10", "--use_ema"])
    accelerator = make_accelerator(cfg)
    source = load_source(cfg)
    run = build_run(cfg, accelerator, source, make_batches(cfg, source, accelerator, 3), 3)
    before = {k: v.clone() for k, v in run.unet.state_dict().items()}
    data_before, optimizer_before = run.batches.state_dict(), str(run.optimizer.state_dict())
    ema_before = [p.clone() for p in run.ema.shadow_params], run.ema.optimization_step
    rng_before = torch.random.get_rng_state()
    assert measure_step_seconds(run) > 0
    after = run.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert run.ema.optimization_step == ema_before[1]  # the EMA updates were timed, then undone
    assert all(torch.equal(a, b) for a, b in zip(ema_before[0], run.ema.shadow_params))
    assert run.batches.state_dict() == data_before and str(run.optimizer.state_dict()) == optimizer_before
    assert torch.equal(torch.random.get_rng_state(), rng_before)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")
def test_a_replanned_run_follows_the_new_lr_schedule_and_ema_cap_from_where_it_is(sprite_arrays, tmp_path):
    cfg = parse_train_args([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(tmp_path / "o"),
                            "--use_ema", "--lr_scheduler", "cosine", "--lr_warmup_ratio", "0.1",
                            "--learning_rate", "1e-3", "--time_budget_minutes", "1"])
    accelerator = make_accelerator(cfg)
    source = load_source(cfg)
    first = plan_for_budget(budget_s=60, elapsed_s=0, step_s=0.05, preview_s=0.0, steps_per_epoch=7)
    run = build_run(cfg, accelerator, source, make_batches(cfg, source, accelerator, 3), 3, plan=first)
    prepared, cap = run.lr_scheduler, run.ema.decay
    for _ in range(first.replan_step):
        run.lr_scheduler.step()
    run.global_step = first.replan_step
    later = replan(first, done_steps=first.replan_step, elapsed_s=first.replan_step * 0.04, step_s=0.04)
    adopt_plan(run, later)
    reference_optimizer = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    reference = build_lr_scheduler(cfg, reference_optimizer, later)
    for _ in range(first.replan_step):
        reference_optimizer.step()
        reference.step()
    assert run.lr_scheduler is prepared and accelerator._schedulers == [prepared]  # checkpoints hold one schedule
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(reference_optimizer.param_groups[0]["lr"], rel=1e-12)
    assert run.max_train_steps == later.total_steps > first.total_steps and run.ema.decay > cap
    for _ in range(later.total_steps - first.replan_step):
        run.lr_scheduler.step()
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed at the new end


def ten_minute_run(sprite_arrays, tmp_path):
    """A tiny 10-minute budgeted run, planned from 0.5 s steps and 4 s previews (not measured), before its loop."""
    cfg = parse_train_args([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(tmp_path / "o"),
                            "--time_budget_minutes", "10"])
    accelerator = make_accelerator(cfg)
    source = load_source(cfg)
    plan = plan_for_budget(budget_s=600, elapsed_s=0, step_s=0.5, preview_s=4.0, steps_per_epoch=7)
    return build_run(cfg, accelerator, source, make_batches(cfg, source, accelerator, 3), 3, plan=plan)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")
def test_each_replan_times_the_steps_since_the_last_one_leaving_out_the_previews(sprite_arrays, tmp_path):
    run = ten_minute_run(sprite_arrays, tmp_path)
    first = run.plan
    now = time.monotonic()  # the loop ran its first tenth in 50 s (no preview yet), 60 s after the run's start
    run.started, run.global_step, run.loop_clock = now - 60.0, first.replan_step, (now - 50.0, 0)
    replan_budget(run)
    assert run.plan.step_s == pytest.approx(50.0 / first.replan_step, rel=1e-3)
    assert run.loop_clock[1] == first.replan_step and run.plan.replanned_again_at is None
    second = run.plan.replan_step  # 40 % in: the steps since the first re-plan took 100 s, a preview of 7 s included
    assert sum(first.replan_step <= step < second for step in run.plan.preview_steps) == 1
    now = time.monotonic()
    run.started, run.global_step, run.loop_clock = now - 160.0, second, (now - 100.0, first.replan_step)
    run.preview_seconds = 7.0  # as long as the loop timed it, not the 4 s it was priced at
    replan_budget(run)
    assert run.plan.step_s == pytest.approx((100.0 - 7.0) / (second - first.replan_step), rel=1e-3)
    assert run.preview_seconds == 0.0  # the next window starts empty
    assert (run.plan.replanned_at, run.plan.replanned_again_at, run.plan.replan_step) == (first.replan_step, second,
                                                                                          None)


def test_the_loop_times_each_preview_it_writes_for_the_next_replan(sprite_arrays, tmp_path, monkeypatch):
    run = ten_minute_run(sprite_arrays, tmp_path)
    plan = run.plan
    monkeypatch.setattr(run.previewer, "write", lambda *args, **kwargs: time.sleep(0.3))
    run.health = Health(run.cfg, "cpu")
    progress = tqdm(total=run.max_train_steps, disable=True)
    run.global_step = plan.preview_steps[0] - 2  # a step without a preview, then the preview's step
    after_update(run, Meter("cpu"), progress)
    assert run.preview_seconds == 0.0
    after_update(run, Meter("cpu"), progress)
    assert run.global_step == plan.preview_steps[0] and run.preview_seconds >= 0.3


def test_a_preview_is_priced_from_a_few_denoising_steps_not_a_whole_grid(sprite_arrays, tmp_path):
    cfg = parse_train_args([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(tmp_path / "o"),
                            "--max_train_steps", "10", "--no-use_ema", "--ddpm_num_inference_steps", "400"])
    accelerator = make_accelerator(cfg)
    source = load_source(cfg)
    run = build_run(cfg, accelerator, source, make_batches(cfg, source, accelerator, 3), 3)
    calls = []
    hook = run.unet.register_forward_hook(lambda *_: calls.append(1))
    seconds = measure_preview_seconds(run)
    hook.remove()
    assert run.previewer.num_inference_steps == 400
    assert len(calls) == 1 + PREVIEW_PROBE_STEPS  # a one-step warm-up and the timed probe, not 400 model calls
    assert seconds > 0


def test_a_budgeted_run_plans_its_steps_and_ends_with_a_loadable_pipeline(sprite_arrays, tmp_path):
    out = tmp_path / "budget"
    main([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(out), "--time_budget_minutes", "0.3",
          "--lr_scheduler", "cosine", "--lr_warmup_ratio", "0.1", "--preview_sampler", "ddim",
          "--checkpointing_steps", "100000"])
    state = json.loads((out / "trainer_state.json").read_text())
    plan = state["plan"]
    assert plan["budget_s"] == pytest.approx(18.0) and plan["step_s"] > 0 and plan["total_steps"] >= 1
    assert state["global_step"] == (state["stopped_by_budget_at"] or plan["total_steps"])
    assert state["cpu_threads"] == {"threads": 1, "reason": "--cpu_threads",  # the suite exports PASSIVE (conftest)
                                    "omp_wait_policy": "PASSIVE (OMP_WAIT_POLICY set before start)"}
    assert plan["initial_total_steps"] >= MIN_STEPS_TO_REPLAN  # so it re-planned a tenth of the way in, and again
    assert plan["replanned_at"] == round(REPLAN_SHARE * plan["initial_total_steps"])
    assert plan["replanned_again_at"] is not None or state["stopped_by_budget_at"] is not None
    assert plan["replan_step"] is None or state["stopped_by_budget_at"] is not None
    card = (out / "README.md").read_text()  # the card states the plan the run followed
    assert (f"Run: {state['global_step']:,} optimizer steps of the {plan['total_steps']:,} planned for a 0.3-minute "
            f"budget ({plan['initial_total_steps']:,} planned from") in card and "on 1 CPU thread(s) per process" in card
    again = f" and at step {plan['replanned_again_at']:,}" if plan["replanned_again_at"] is not None else ""
    assert f"re-planned at step {plan['replanned_at']:,}{again} from the run's own" in card
    recorded = json.loads((out / "training_config.json").read_text())["training_run"]
    assert recorded["planned_steps"] == plan["total_steps"] and recorded["step_seconds"] == plan["step_s"]
    assert recorded["initial_step_seconds"] == plan["initial_step_s"]
    written = sorted(p.name for p in (out / "samples").glob("step-*.png")) if (out / "samples").exists() else []
    expected = [f"step-{s:06d}{suffix}.png" for s in plan["preview_steps"] if s <= state["global_step"]
                for suffix in ("", "-ema")]
    assert written == sorted(expected)
    pipe = SpritePipeline.from_pretrained(out)
    assert pipe(class_labels=[0, 2], num_inference_steps=2, output_type="np").images.shape == (2, 8, 8, 3)


def test_a_resumed_budgeted_run_keeps_the_plan_it_started_with(sprite_arrays, tmp_path):
    out = tmp_path / "budget"
    args = [*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(out), "--time_budget_minutes", "0.2",
            "--checkpointing_steps", "2", "--no-conditional"]
    main(args)
    first = json.loads((out / "trainer_state.json").read_text())["plan"]
    after = (first["replanned_again_at"] or first["replanned_at"]) + 1  # a checkpoint after the re-plans: the
    # resumed run goes on with that plan
    main([*args, "--resume_from_checkpoint", str(out / f"checkpoint-{after + after % 2}")])
    assert json.loads((out / "trainer_state.json").read_text())["plan"] == first
    main([*args, "--resume_from_checkpoint", str(out / "checkpoint-2")])  # before it: the first plan, then its re-plan
    resumed = json.loads((out / "trainer_state.json").read_text())["plan"]
    assert (resumed["initial_total_steps"], resumed["initial_step_s"]) == (first["initial_total_steps"],
                                                                         first["initial_step_s"])
    assert resumed["replanned_at"] == first["replanned_at"]
    assert type(DDPMPipeline.from_pretrained(out).unet).__name__ == "ContextUnet"


@pytest.mark.parametrize("flags, message", [
    (["--time_budget_minutes", "0"], "--time_budget_minutes must be positive"),
    (["--time_budget_minutes", "-2"], "--time_budget_minutes must be positive"),
    (["--time_budget_minutes", "5", "--max_train_steps", "50"], "give either --max_train_steps or --time_budget"),
    (["--lr_warmup_ratio", "1.5"], "--lr_warmup_ratio is a share"),
    (["--cpu_threads", "0"], "--cpu_threads must be at least 1"),
    (["--model", "basic_unet", "--no-conditional", "--snr_gamma", "5"], "--snr_gamma weighs the loss"),
])
def test_bad_budget_settings_fail_before_anything_is_written(tmp_path, flags, message):
    out = tmp_path / "never"
    with pytest.raises(TrainConfigError, match=message):
        main([*TINY, "--output_dir", str(out), *flags])
    assert not out.exists()


def test_a_budget_too_small_for_one_step_fails_before_anything_is_written(sprite_arrays, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="room for no training step"):
        main([*TINY, "--train_data_dir", str(sprite_arrays), "--output_dir", str(out), "--time_budget_minutes",
              "0.0001"])
    assert not out.exists()


def test_a_flag_length_replaces_the_presets_budget_with_a_log_line(caplog):
    with caplog.at_level(logging.WARNING, logger="hf_sprites.training.config"):
        cfg = parse_train_args(["--preset", "sprites_context_fast", "--max_train_steps", "50"])
    assert (cfg.max_train_steps, cfg.time_budget_minutes) == (50, None)
    assert "Preset 'sprites_context_fast' sets time_budget_minutes=10" in caplog.text


def test_the_fast_presets_are_the_course_models_spending_minutes_differently():
    fast, course = parse_train_args(["--preset", "sprites_context_fast"]), parse_train_args(["--preset", "sprites_context"])
    same = ("model", "resolution", "in_channels", "conditional", "ddpm_beta_schedule", "ddpm_num_steps",
            "prediction_type")
    assert [getattr(fast, k) for k in same] == [getattr(course, k) for k in same]
    assert (fast.n_feat, course.n_feat) == (32, 64)  # the width lever: the same network, half as wide
    assert (fast.cond_drop_prob, course.cond_drop_prob) == (0.2, 0.1)  # the label-dropout lever
    assert fast.time_budget_minutes == 10 and fast.lr_warmup_ratio and fast.mixed_precision == "auto"
    plain = parse_train_args(["--preset", "sprites_fast"])
    assert not plain.conditional and plain.time_budget_minutes == 10 and plain.model == "context_unet"


def test_a_run_that_finishes_its_plan_early_says_so(caplog):
    import time
    from types import SimpleNamespace

    from accelerate import PartialState

    from hf_sprites.training.loop import warn_if_budget_left
    from hf_sprites.training.plan import RunPlan

    PartialState()  # accelerate's logger needs it
    plan = RunPlan(total_steps=10, steps_per_epoch=5, num_epochs=2, budget_s=100.0, step_s=1.0, preview_s=0.0)
    with caplog.at_level(logging.WARNING, logger="hf_sprites.training.loop"):
        warn_if_budget_left(SimpleNamespace(plan=plan, started=time.monotonic() - 10))  # 90 s of 100 s left
        assert "with 90 s of its 100 s budget unused" in caplog.text
        caplog.clear()
        warn_if_budget_left(SimpleNamespace(plan=plan, started=time.monotonic() - 95))  # 5 s left: as planned
    assert caplog.text == ""
