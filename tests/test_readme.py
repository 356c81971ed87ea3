"""CI installs exactly as the README says, and the README's commands name real modes."""

from __future__ import annotations

import re
from pathlib import Path

from yolo_optim.cli import MODES

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    quick = [b.strip() for b in _bash_blocks() if "pytest" in b and "pip install" in b]
    assert len(quick) == 1, "the README must give exactly one install-and-test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick[0] in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_readme_main_job_is_an_available_mode():
    main_job = next(b.strip() for b in _bash_blocks() if "pip install -e ." in b and "pytest" not in b)
    mode = main_job.rsplit("yolo-optim", 1)[1].split()[0]
    assert mode in MODES, f"the README's main job runs mode '{mode}', which is not available"
