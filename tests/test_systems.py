"""The demonstrations' shared pieces: the result writer and the ``attnzoo demo`` table."""

import json

import pytest

from attnzoo.systems import DEMOS, demo_module
from attnzoo.systems.report import markdown_table, write_result


def test_write_result_records_command_machine_rows_and_links_figures(tmp_path):
    (tmp_path / "curve.png").write_bytes(b"png")
    rows = [{"model": "a", "ari": 0.51234}, {"model": "b", "ari": 0.25}]
    paths = write_result(tmp_path, title="T", command="attnzoo demo x", settings={"steps": 3}, rows=rows,
                         columns=("model", "ari"), reading="Reading.", figures=[tmp_path / "curve.png"])
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["rows"] == rows and record["settings"] == {"steps": 3} and record["command"] == "attnzoo demo x"
    assert {"cpu", "isa", "threads"} <= set(record["machine"])
    text = (tmp_path / "result.md").read_text()
    assert "| a | 0.5123 |" in text and "![curve](curve.png)" in text and text.startswith("# T")
    assert [p.name for p in paths] == ["result.json", "result.md", "curve.png"]


def test_markdown_table_leaves_missing_cells_empty():
    assert markdown_table([{"a": 1}], ("a", "b")).splitlines()[-1] == "| 1 |  |"


def test_unknown_demo_names_the_known_ones():
    with pytest.raises(ValueError, match="demo 'nope' is not known"):
        demo_module("nope")


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_every_demo_module_has_the_protocol(name):
    module = demo_module(name)
    assert isinstance(module.SUMMARY, str) and callable(module.add_arguments) and callable(module.run)
