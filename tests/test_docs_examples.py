"""The documentation site: every ```python block of docs/*.md runs, the generated pages are current, the
public functions' ``>>>`` examples pass, and ``mkdocs build --strict`` succeeds (skipped without mkdocs)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import attnzoo
from attnzoo import docs

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
BLOCKS = [(page, i, block) for page in PAGES
          for i, block in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M))]


def _runs_examples(module: str) -> bool:
    source = importlib.util.find_spec(module).loader.get_source(module) or ""
    return any(">>> " in line and "doctest: +SKIP" not in line for line in source.splitlines())


DOCTEST_MODULES = sorted(info.name for info in pkgutil.walk_packages(attnzoo.__path__, "attnzoo.")
                         if _runs_examples(info.name))
"""Every module of the package whose docstrings hold ``>>>`` examples that run."""


def test_every_family_page_has_an_example() -> None:
    """A page with a runnable example per registered family (the baseline family's is the home page)."""
    with_examples = {page.name for page, _, _ in BLOCKS}
    wanted = {"index.md" if family == "full" else f"{family}.md" for family in attnzoo.families()}
    assert wanted <= with_examples, f"families without an example page: {sorted(wanted - with_examples)}"


@pytest.mark.parametrize("page, index, block", BLOCKS, ids=[f"{p.relative_to(ROOT)}#{i}" for p, i, _ in BLOCKS])
def test_python_block_runs(page: Path, index: int, block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, f"{page.relative_to(ROOT)} block {index}", "exec"), {"__name__": "__docs__"})


def test_generated_pages_are_current() -> None:
    assert (ROOT / docs.VARIANTS_PAGE).read_text() == docs.variants_page(), \
        "docs/variants.md is stale: python -c 'import attnzoo.docs as d; d.write_pages()'"
    for path, package in docs.API_PAGES.items():
        assert (ROOT / path).read_text() == docs.api_page(package), \
            f"{path} is stale: python -c 'import attnzoo.docs as d; d.write_pages()'"


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed "
                                                               "(pip install -e '.[docs]')")
    if shutil.which("mkdocs") is None:
        pytest.skip("the mkdocs command is not on PATH (pip install -e '.[docs]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "api" / "ops" / "index.html").read_text().count("lightning_attention") > 0
