"""The environment and locks hold what pyproject.toml promises."""

import re
import site
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from tests.conftest import ROOT

WITHDRAWN_LITELLM = re.compile(r"^(1\.82\.7|1\.82\.8|1\.107\.\d+)$")
LOCKS = [ROOT / "requirements" / "base.lock", ROOT / "requirements" / "dev.lock"]


def test_no_litellm_init_pth_in_the_environment():
    # The compromised litellm releases shipped a .pth file that runs at every interpreter start.
    folders = {Path(p) for p in [*site.getsitepackages(), site.getusersitepackages(), *sys.path] if p}
    found = [path for folder in folders if folder.is_dir() for path in folder.glob("litellm_init.pth")]
    assert found == []


def test_litellm_is_pinned_exactly_to_a_safe_release():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [dep for dep in dependencies if dep.startswith("litellm")]
    assert len(pins) == 1 and re.fullmatch(r"litellm==[\d.]+", pins[0]), pins
    pinned = pins[0].split("==")[1]
    assert not WITHDRAWN_LITELLM.match(pinned)
    assert version("litellm") == pinned
    for lock in LOCKS:
        assert f"\nlitellm=={pinned} " in lock.read_text()


def test_every_locked_requirement_carries_a_sha256_hash():
    for lock in LOCKS:
        blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
        requirements = [block for block in blocks if "==" in block.split("\n")[0]]
        assert requirements, lock
        unhashed = [block.split()[0] for block in requirements if "--hash=sha256:" not in block]
        assert unhashed == [], f"{lock.name}: {unhashed}"


def test_the_runtime_lock_ships_the_versions_the_tests_ran_with():
    def pins(lock):
        return set(re.findall(r"^([A-Za-z0-9._-]+==[^\s;]+)", lock.read_text(), re.M))

    base, dev = (pins(lock) for lock in LOCKS)
    assert base and base - dev == set()
