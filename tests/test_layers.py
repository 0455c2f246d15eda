"""The import-linter contract in pyproject.toml keeps the layers pointing one way:
governance, promptfoo -> evaluations -> experiments -> prompts -> llm -> accounts -> core."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["promptlab", "prompts", "experiments", "evaluations"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def tree_copy(tmp_path) -> Path:
    """The packages' Python files and the contract, in a scratch folder to break on purpose."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return tmp_path


@pytest.mark.parametrize(
    "module, upward_import, contract",
    [
        ("prompts/checks.py", "from evaluations import gates", "Apps"),
        ("promptlab/accounts/access.py", "from promptlab.llm import gateway", "Inside promptlab"),
        ("promptlab/errors.py", "from promptlab.accounts import models", "Inside promptlab"),
        ("evaluations/statistics.py", "from evaluations.governance import approvals", "Inside evaluations"),
    ],
)
def test_an_upward_import_breaks_the_contract(tree_copy, module, upward_import, contract):
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{upward_import}  # upward, on purpose\n")

    result = lint_imports(tree_copy)

    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
    assert upward_import.split()[1] in result.stdout  # the report names the imported module
