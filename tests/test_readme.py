"""The README's code blocks marked `<!-- readme-test: NAME -->` run verbatim in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = dict(re.findall(r"<!-- readme-test: (\S+) -->\s*```python\n(.*?)```", README.read_text(), flags=re.S))


def test_readme_has_tested_blocks():
    assert "core" in BLOCKS


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_readme_block_runs(name, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKS[name]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
