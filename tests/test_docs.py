"""The documentation: the MkDocs site builds in strict mode (so a broken link or anchor fails
the tests), and the README stays short with every relative link pointing at a real file."""

import os
import re
import shutil
import subprocess
import sys

from tests.conftest import ROOT

README = ROOT / "README.md"
# [text](target) or [text](target "title"); images (![alt](src)) match too, and are checked alike.
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCED_BLOCK = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.MULTILINE | re.DOTALL)


def mkdocs_build(cwd, site_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, not ours
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_site_builds_strictly_and_offline(tmp_path):
    result = mkdocs_build(ROOT, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    pages = list(tmp_path.rglob("*.html"))
    assert (tmp_path / "index.html").exists() and (tmp_path / "operator-guide" / "configuration" / "index.html").exists()
    # theme.font: false: no page asks Google Fonts for anything, so the site works offline.
    assert [page for page in pages if "fonts.googleapis.com" in page.read_text(encoding="utf-8")] == []


def test_a_broken_link_fails_the_strict_build(tmp_path):
    # The check above only means something if a broken link can fail it.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", project / "docs")
    with open(project / "docs" / "index.md", "a", encoding="utf-8") as index:
        index.write("\nSee [a page that does not exist](no-such-page.md).\n")

    result = mkdocs_build(project, tmp_path / "site")

    assert result.returncode != 0, result.stdout + result.stderr
    assert "no-such-page.md" in result.stdout + result.stderr


def readme_links() -> list[str]:
    text = FENCED_BLOCK.sub("", README.read_text(encoding="utf-8"))
    return MARKDOWN_LINK.findall(text)


def test_every_relative_link_in_the_readme_points_at_a_file_in_the_repository():
    targets = [
        target.partition("#")[0]
        for target in readme_links()
        if not target.startswith(("http://", "https://", "mailto:", "#"))
    ]

    assert targets, "the README links into docs/"
    broken = []
    for target in targets:
        path = (ROOT / target).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []


def test_the_link_check_sees_links_and_skips_what_it_should():
    # Guards the regular expression: the README test above must not pass by finding nothing.
    sample = '[a](docs/x.md) [b](docs/y.md#part "title") [c](https://example.com) [d](#top) ![e](img.png)'
    assert MARKDOWN_LINK.findall(sample) == ["docs/x.md", "docs/y.md#part", "https://example.com", "#top", "img.png"]


def test_the_readme_stays_short():
    lines = README.read_text(encoding="utf-8").splitlines()

    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move the detail into docs/"
