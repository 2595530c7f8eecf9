"""Mesa (arXiv 2111.11124): memory-saving training, the saved activations of the backward stored in 8 bits with
per-group running ranges, the forward exact. :class:`MesaSavedActivations` wraps any module."""

from attnzoo.quant.mesa.quantizer import PackedActivation, RunningRangeQuantizer
from attnzoo.quant.mesa.wrapper import MesaSavedActivations

__all__ = ["MesaSavedActivations", "PackedActivation", "RunningRangeQuantizer"]
