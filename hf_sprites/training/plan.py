"""The plan of a training run on its machine: CPU threads, precision, the steps that fit its time budget, its previews.

A run either has a fixed length (`--num_epochs` / `--max_train_steps`) or a wall-clock budget
(`--time_budget_minutes`). A budgeted run measures its own step time and the cost of one preview grid
before the first real step, then plans: how many optimizer steps fit, so that the LR schedule
(warm-up and decay) and the EMA warm-up span exactly the run that happens, and at which steps the few
intermediate previews come (at most `PREVIEW_SHARE` of the budget). A few steps timed before the run miss
its real pace by 10-15 % either way, so once `REPLAN_SHARE` of the planned steps are done the run times
those steps and plans the rest again (`replan`); and as the first tenth of a run can be slower than the rest (a
pause, a warming machine), it re-plans once more at `SECOND_REPLAN_SHARE` of its new plan, from the steps since the
first re-plan. The plan is logged, saved in `trainer_state.json` and shown in the model card.

Example:
    >>> plan = plan_for_budget(budget_s=600, elapsed_s=20, step_s=0.3, preview_s=6.0, steps_per_epoch=22)
    >>> plan.total_steps, plan.preview_steps, plan.replan_step
    (1776, (444, 888, 1332), 178)
    >>> later = replan(plan, done_steps=178, elapsed_s=80, step_s=0.25)  # the run's own steps were faster
    >>> later.total_steps, later.preview_steps, later.replanned_at, later.initial_total_steps, later.replan_step
    (2082, (520, 1041, 1561), 178, 1776, 833)
    >>> last = replan(later, done_steps=833, elapsed_s=250, step_s=0.22)  # 40 % in: faster still
    >>> last.total_steps, last.preview_steps, last.replanned_at, last.replanned_again_at, last.replan_step
    (2289, (520, 1144, 1716), 178, 833, None)
    >>> fixed = plan_for_length(17, 3, accumulation=2, max_train_steps=None, save_images_epochs=1)
    >>> fixed.steps_per_epoch, fixed.total_steps, fixed.num_epochs, fixed.preview_steps
    (8, 24, 3, (8, 16))
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Optional

import psutil
import torch

# a budgeted run spends at most this share of its budget on intermediate preview grids
PREVIEW_SHARE = 0.1
# intermediate previews of a budgeted run (the final grid comes after the budget, with the final save)
MAX_PREVIEWS = 3
# share of the remaining budget a budgeted run plans to fill; the rest absorbs step-time jitter and checkpoints
BUDGET_FILL = 0.95
# a budgeted run re-plans from its own mean step time when this share of its planned steps is done ...
REPLAN_SHARE = 0.1
# ... and once more, from its steps since then, when this share of its new plan is done (between the previews)
SECOND_REPLAN_SHARE = 0.4
# a budgeted run planned shorter than this many steps does not re-plan (too few steps to time)
MIN_STEPS_TO_REPLAN = 20


@dataclass(frozen=True)
class RunPlan:
    """How long a run is and what it does along the way.

    Attributes:
        total_steps: optimizer steps of the whole run (LR decay and EMA warm-up span these).
        steps_per_epoch: optimizer steps per pass over the data.
        num_epochs: passes over the data the run starts (the last may be partial).
        preview_steps: steps after which an intermediate preview grid is written (the final grid comes after the last).
        budget_s: the wall-clock budget in seconds (None: a fixed-length run).
        step_s: measured seconds per optimizer step (budgeted runs).
        preview_s: measured seconds per preview grid (budgeted runs).
        replan_step: the step after which a budgeted run next times its own steps and plans the rest again
            (`replan`); None once it has twice, or when it will not.
        replanned_at: the step where the run was first planned again (None: it kept its first plan).
        replanned_again_at: the step of its second re-plan (None: it had none).
        initial_total_steps, initial_step_s: the first plan's steps and measured step time, before `replan`.
    """

    total_steps: int
    steps_per_epoch: int
    num_epochs: int
    preview_steps: tuple = ()
    budget_s: Optional[float] = None
    step_s: Optional[float] = None
    preview_s: Optional[float] = None
    replan_step: Optional[int] = None
    replanned_at: Optional[int] = None
    replanned_again_at: Optional[int] = None
    initial_total_steps: Optional[int] = None
    initial_step_s: Optional[float] = None

    def to_dict(self) -> dict:
        values = asdict(self)
        values["preview_steps"] = list(self.preview_steps)
        return values


def steps_per_epoch_of(batches_per_epoch: int, accumulation: int) -> int:
    """Optimizer steps per epoch as diffusers' scripts count them (at least one)."""
    return max(1, batches_per_epoch // accumulation)


def plan_for_length(batches_per_epoch: int, num_epochs: int, *, accumulation: int, max_train_steps: Optional[int],
                    save_images_epochs: Optional[int] = None) -> RunPlan:
    """The plan of a fixed-length run: `max_train_steps` when given, else `num_epochs` full epochs, with a preview
    at the end of every `save_images_epochs`-th epoch before the last step."""
    per_epoch = steps_per_epoch_of(batches_per_epoch, accumulation)
    total = max_train_steps or num_epochs * per_epoch
    every = per_epoch * save_images_epochs if save_images_epochs else total
    return RunPlan(total_steps=total, steps_per_epoch=per_epoch, num_epochs=math.ceil(total / per_epoch),
                   preview_steps=tuple(range(every, total, every)))


def plan_for_budget(*, budget_s: float, elapsed_s: float, step_s: float, preview_s: float,
                    steps_per_epoch: int, max_previews: int = MAX_PREVIEWS) -> RunPlan:
    """The first plan of a budgeted run, made once the step and preview times are measured (`replan` revises it twice).

    `elapsed_s` is the part of the budget already spent (set-up and measuring). Previews are spread evenly
    through the run, as many as fit in `PREVIEW_SHARE` of the budget, at most `max_previews`.
    """
    remaining = (budget_s - elapsed_s) * BUDGET_FILL
    num_previews = min(max_previews, int(PREVIEW_SHARE * budget_s // preview_s)) if preview_s > 0 else max_previews
    total = math.floor((remaining - num_previews * preview_s) / step_s + 1e-9)  # (the epsilon absorbs rounding)
    if total < 1:
        raise ValueError(
            f"the time budget leaves room for no training step (set-up took {elapsed_s:.0f} s of {budget_s:.0f} s, one "
            f"step takes {step_s:.2f} s); give a larger --time_budget_minutes"
        )
    return RunPlan(total_steps=total, steps_per_epoch=steps_per_epoch, num_epochs=math.ceil(total / steps_per_epoch),
                   preview_steps=evenly_spaced(total, num_previews), budget_s=budget_s, step_s=step_s,
                   preview_s=preview_s,
                   replan_step=round(REPLAN_SHARE * total) if total >= MIN_STEPS_TO_REPLAN else None)


def replan(plan: RunPlan, *, done_steps: int, elapsed_s: float, step_s: float) -> RunPlan:
    """The rest of a budgeted run planned again from `step_s`, its own pace so far: the total steps that fit what is
    left of the budget after the previews still to come, and those previews spread evenly over the new total (the LR
    schedule and the EMA cap then follow it). At least one more step. The first re-plan schedules a second one at
    `SECOND_REPLAN_SHARE` of its new total (when at least `MIN_STEPS_TO_REPLAN` steps away); the second, none."""
    remaining = (plan.budget_s - elapsed_s) * BUDGET_FILL
    previews_left = sum(step > done_steps for step in plan.preview_steps)
    more = math.floor((remaining - previews_left * plan.preview_s) / step_s + 1e-9)
    total = done_steps + max(1, more)
    # the previews written so far, then the run's previews spread over its new length: those still to come, no more
    # than were budgeted
    to_come = [step for step in evenly_spaced(total, len(plan.preview_steps)) if step > done_steps]
    previews = tuple(step for step in plan.preview_steps if step <= done_steps) + \
        (tuple(to_come[len(to_come) - previews_left:]) if previews_left else ())
    first = plan.replanned_at is None
    again = round(SECOND_REPLAN_SHARE * total) if first else None
    if again is not None and again - done_steps < MIN_STEPS_TO_REPLAN:
        again = None
    return replace(plan, total_steps=total, num_epochs=math.ceil(total / plan.steps_per_epoch), preview_steps=previews,
                   step_s=step_s, replan_step=again, replanned_at=done_steps if first else plan.replanned_at,
                   replanned_again_at=None if first else done_steps,
                   initial_total_steps=plan.total_steps if first else plan.initial_total_steps,
                   initial_step_s=plan.step_s if first else plan.initial_step_s)


def evenly_spaced(total: int, count: int) -> tuple:
    """`count` steps dividing `total` steps evenly, neither 0 nor `total` (previews before the final grid)."""
    return tuple(sorted({total * (i + 1) // (count + 1) for i in range(count)} - {0, total}))


def has_native_bf16() -> bool:
    """Whether this machine computes bf16 natively: a CUDA GPU with bf16, or a CPU whose oneDNN has bf16 kernels
    (AVX512-BF16 / AMX); elsewhere bf16 autocast is emulated and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_mixed_precision(name: str) -> str:
    """`--mixed_precision auto` is bf16 where the machine computes it natively (`has_native_bf16`), else "no"."""
    if name != "auto":
        return name
    return "bf16" if has_native_bf16() else "no"


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op CPU threads a process uses, and why; and how OpenMP's idle threads wait (`omp_wait_policy`)."""

    threads: int
    reason: str
    omp_wait_policy: str = ""

    def to_dict(self) -> dict:
        return {"threads": self.threads, "reason": self.reason, "omp_wait_policy": self.omp_wait_policy}


OMP_WAIT_REASON_VAR = "HF_SPRITES_OMP_WAIT_REASON"  # set by examples/train.py, which chooses before torch loads


def describe_omp_wait_policy(env=None) -> str:
    """How this process's OpenMP threads wait, and why, for the log and `trainer_state.json`.

    The policy is fixed when OpenMP starts, before any package code runs, so `examples/train.py` chooses it
    (PASSIVE when other work keeps the CPUs busy at start, else OpenMP's default) and leaves its reason in
    `HF_SPRITES_OMP_WAIT_REASON`; `hf-sprites train` starts after torch and leaves OpenMP as it finds it.

    >>> describe_omp_wait_policy({"OMP_WAIT_POLICY": "PASSIVE"})
    'PASSIVE (OMP_WAIT_POLICY set before start)'
    >>> describe_omp_wait_policy({"HF_SPRITES_OMP_WAIT_REASON": "other work kept 0.1 of 2 CPUs busy at start"})
    "OpenMP's default (other work kept 0.1 of 2 CPUs busy at start)"
    """
    env = os.environ if env is None else env
    policy = (env.get("OMP_WAIT_POLICY") or "").strip().upper() or "OpenMP's default"
    reason = env.get(OMP_WAIT_REASON_VAR)
    if not reason:
        reason = "OMP_WAIT_POLICY set before start" if "OMP_WAIT_POLICY" in env else "not set"
    return f"{policy} ({reason})"


ACCELERATE_LAUNCH_MARKER = "ACCELERATE_DYNAMO_BACKEND"  # set in the script's environment by `accelerate launch`


def usable_cores() -> int:
    """Physical cores this process may run on (CPU affinity and cgroup-style limits respected)."""
    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        allowed = physical
    return max(1, min(physical, allowed))


def _launcher_set_by_user() -> Optional[str]:
    """What the user gave `accelerate launch` about threads (its own environment or flag), or None."""
    parent = psutil.Process(os.getppid())
    if "--num_cpu_threads_per_process" in " ".join(parent.cmdline()):
        return "accelerate launch --num_cpu_threads_per_process"
    if "OMP_NUM_THREADS" in parent.environ():
        return "OMP_NUM_THREADS set before accelerate launch"
    return None


def local_process_count(accelerator) -> int:
    """Processes of this run on this machine (accelerate's launcher sets LOCAL_WORLD_SIZE)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))


def use_cpu_threads(requested: Optional[int], accelerator) -> Optional[ThreadChoice]:
    """Set this process's intra-op threads for CPU training (`choose_cpu_threads`); None on an accelerator device."""
    if accelerator.device.type != "cpu":
        return None
    choice = choose_cpu_threads(requested, local_process_count(accelerator))
    torch.set_num_threads(choice.threads)
    return replace(choice, omp_wait_policy=describe_omp_wait_policy())


def choose_cpu_threads(requested: Optional[int], local_processes: int = 1, env=None) -> ThreadChoice:
    """Intra-op threads for CPU training.

    An explicit choice wins: `--cpu_threads`, else `OMP_NUM_THREADS` set by the user. `accelerate launch` on a
    machine without a GPU sets `OMP_NUM_THREADS=1` for the script unless told otherwise; that default is not a user
    choice, so the run then uses the usable cores shared among the processes on this machine.
    """
    env = os.environ if env is None else env
    if requested is not None:
        return ThreadChoice(requested, "--cpu_threads")
    auto = ThreadChoice(max(1, usable_cores() // max(1, local_processes)),
                        f"{usable_cores()} usable cores / {local_processes} process(es) on this machine")
    omp = (env.get("OMP_NUM_THREADS") or "").strip()
    if not omp:  # unset or empty: OpenMP itself takes an empty value as unset
        return auto
    if not omp.isdigit() or int(omp) < 1:
        raise ValueError(f"OMP_NUM_THREADS={omp!r} is not a positive whole number of threads; set it to one (e.g. 2), "
                         "unset it to use the usable cores, or pass --cpu_threads N")
    if ACCELERATE_LAUNCH_MARKER not in env:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    try:
        user_choice = _launcher_set_by_user()
    except Exception as err:  # the launcher process is gone or unreadable: keep what accelerate set
        return ThreadChoice(int(omp), f"OMP_NUM_THREADS from accelerate launch (launcher unreadable: {err})")
    return ThreadChoice(int(omp), user_choice) if user_choice else auto
