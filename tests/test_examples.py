"""The thin example entries reach the package's commands."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sample_example_is_the_cli_sample_command():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "sample.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--class_label" in result.stdout and "--guidance_scale" in result.stdout


def test_sample_example_fails_in_one_line_on_a_missing_folder(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "sample.py"), str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stderr.strip()


def test_train_example_shows_the_flags_generated_from_the_config():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    assert "--cond_drop_prob COND_DROP_PROB probability of dropping the labels/context per sample" in help_text
    assert "--model {context_unet,basic_unet,unet2d}" in help_text and "--conditional, --no-conditional" in help_text
