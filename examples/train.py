"""Train a diffusion model: `accelerate launch examples/train.py [flags]` (see `--help`).

With no flags it trains the embedded default (scikit-learn digits, conditional ContextUnet) in a few CPU minutes.

Before torch loads, the script picks how OpenMP's idle threads wait (`choose_omp_wait_policy`): that can only be set
before the library starts, so it lives here and not in the package. The run logs the choice and records it in
`trainer_state.json` (`cpu_threads.omp_wait_policy`).
"""

import os
import sys

BUSY_CPUS = 0.5  # other work keeping this much of a CPU busy makes spinning waiters costly
WAIT_REASON_VAR = "HF_SPRITES_OMP_WAIT_REASON"  # read by hf_sprites.training.plan for the log and trainer_state


def choose_omp_wait_policy(env, busy_cpus: float, cpus: int):
    """`(OMP_WAIT_POLICY to set or None, why)` for a run that uses every core.

    The user's `OMP_WAIT_POLICY` wins (returns None). Otherwise, when other work already keeps `BUSY_CPUS` or more
    busy, PASSIVE: threads that spin while they wait take the cores the working threads need (a loaded 2-core VM ran
    ContextUnet steps 7x slower). On a quiet machine OpenMP's own default (spin briefly, then sleep), which trained the
    README's command 1.35 times as fast as PASSIVE on the project's 2-core CPU (256 against 189 images/s, 2 runs
    each).

    >>> choose_omp_wait_policy({}, busy_cpus=1.2, cpus=2)
    ('PASSIVE', 'other work kept 1.2 of 2 CPUs busy at start')
    >>> choose_omp_wait_policy({}, busy_cpus=0.1, cpus=2)
    (None, 'other work kept 0.1 of 2 CPUs busy at start')
    >>> choose_omp_wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}, busy_cpus=1.2, cpus=2)
    (None, 'OMP_WAIT_POLICY set before start')
    """
    if "OMP_WAIT_POLICY" in env:
        return None, "OMP_WAIT_POLICY set before start"
    busy_cpus = round(busy_cpus, 1)  # decide on the figure the log shows
    return ("PASSIVE" if busy_cpus >= BUSY_CPUS else None), f"other work kept {busy_cpus} of {cpus} CPUs busy at start"


def busy_cpus_now(seconds: float = 0.5) -> float:
    """CPUs' worth of work running on this machine over the next `seconds` (this process sleeps meanwhile)."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or 1)


if __name__ == "__main__":
    busy = 0.0 if "OMP_WAIT_POLICY" in os.environ else busy_cpus_now()  # no need to measure when the user chose
    policy, why = choose_omp_wait_policy(os.environ, busy, os.cpu_count() or 1)
    if policy:
        os.environ["OMP_WAIT_POLICY"] = policy
    os.environ[WAIT_REASON_VAR] = why  # always, so a stale value from a parent process is not reported

    from hf_sprites.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))  # bad input: one line and exit status 1, as `hf-sprites train`
