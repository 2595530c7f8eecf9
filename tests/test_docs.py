"""The README's variants table is the one generated from the registry (no variant can be missing from it)."""

from __future__ import annotations

from pathlib import Path

import attnzoo
from attnzoo.docs import TABLE_END, TABLE_START, variants_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_holds_the_generated_variants_table() -> None:
    text = README.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    assert text[start:end] == variants_markdown(), \
        "README variants table is stale: python -c 'import attnzoo.docs as d; d.write_pages()'"


def test_generated_table_has_a_row_per_variant_with_its_implementations() -> None:
    table = variants_markdown()
    for variant in attnzoo.variants():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{variant.name}` |"))
        assert variant.paper.arxiv in row and all(f"{name} (" in row for name in variant.implementations)
