"""The quantization report on real pretrained weights (``attnzoo quant``): all-MiniLM-L6-v2
(:mod:`~attnzoo.quant.evaluation.minilm`) and the method table (:mod:`~attnzoo.quant.evaluation.report`)."""

from attnzoo.quant.evaluation.minilm import MiniLM, ModelNotInstalledError, embed, load_minilm, sentences
from attnzoo.quant.evaluation.report import ReportConfig, run_report, write

__all__ = ["MiniLM", "ModelNotInstalledError", "ReportConfig", "embed", "load_minilm", "run_report", "sentences",
           "write"]
