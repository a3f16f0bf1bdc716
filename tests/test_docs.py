"""The docs that are generated from code are current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_command_reference_matches_the_parser() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_commands_doc.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
