"""Every causal mixer (and whole architecture) that compare trains on the Austen LM, built as that task builds it:
editing a byte leaves every earlier position's logits unchanged, but for a mixer that declares its selection of
keys reads later tokens (routing attention, ``causal_selection=False``), where the edit does reach earlier
positions. A forward-side check on the real models (float32; the FFT convolutions are causal to round-off):
gradients cannot show a leak through a selection."""

from __future__ import annotations

import pytest
import torch

from attnzoo.compare.report import reads_the_future
from attnzoo.models.architectures import language_model_names
from attnzoo.tasks.austen_lm import AustenLMTask


@pytest.mark.parametrize("mixer", sorted(language_model_names()))
def test_austen_models_do_not_read_later_bytes(mixer: str) -> None:
    task = AustenLMTask(seq_len=64, d_model=32, num_layers=2, num_heads=2, window=9)
    torch.manual_seed(0)
    model = task.build_model(mixer, task.mixer_options(mixer)).eval()
    tokens = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(tokens)
        worst = 0.0
        for t in (1, 17, 40, 63):
            edited = tokens.clone()
            edited[:, t] = (edited[:, t] + 101) % 256
            worst = max(worst, (model(edited)[:, :t] - base[:, :t]).abs().max().item())
    round_off = 1e-5 * base.abs().max().item()  # float32 FFT convolutions (BaseConv, LMU) are causal to round-off
    if reads_the_future(mixer):
        assert worst > 1e3 * round_off, f"{mixer} declares causal_selection=False but no edit reached an earlier byte"
    else:
        assert worst <= round_off, f"{mixer}: editing a later byte changed earlier logits by {worst:.3g}"
