"""The sequence classifier (attnzoo.models.sequence_classifier) with every (B, N, C) mixer of the registry."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from attnzoo.models import SequenceClassifier, usable_mixers
from attnzoo.models.mixers import SEQUENCE_LAYOUT, mixer_spec

SEQ_LEN = 64
MIXERS = usable_mixers((SEQUENCE_LAYOUT,), causal=False)
CAUSAL_MIXERS = usable_mixers((SEQUENCE_LAYOUT,), causal=True)


def _tiny(mixer: str, **kwargs: object) -> SequenceClassifier:
    torch.manual_seed(0)
    options = {"seq_len": SEQ_LEN, "num_classes": 4, "dim": 16, "depth": 1, **kwargs}
    return SequenceClassifier(mixer=mixer, **options)


@pytest.mark.parametrize("mixer", MIXERS)
def test_logits_are_finite_and_every_parameter_gets_a_gradient(mixer: str) -> None:
    model = _tiny(mixer).train()
    logits = model(torch.rand(3, SEQ_LEN))
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


@pytest.mark.parametrize("mixer", MIXERS)
def test_one_sequences_logits_do_not_depend_on_another_sequence(mixer: str) -> None:
    model = _tiny(mixer).double().eval()  # eval: lmu_memory's BatchNorm uses running statistics
    inputs = torch.rand(2, SEQ_LEN, 1, dtype=torch.float64)
    changed = inputs.clone()
    changed[1] = torch.rand(SEQ_LEN, 1, dtype=torch.float64)
    with torch.no_grad():
        before, after = model(inputs), model(changed)
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=1e-12)
    assert not torch.allclose(after[1], before[1])
    torch.testing.assert_close(model(inputs.squeeze(-1)), before)  # (B, N) is (B, N, 1)


@pytest.mark.parametrize("mixer", CAUSAL_MIXERS)
def test_causal_model_with_last_token_pooling(mixer: str) -> None:
    takes_flag = "is_causal" in inspect.signature(mixer_spec(mixer, causal=True).layer.__init__).parameters
    model = _tiny(mixer, causal=True, pool="last", learned_positions=False,
                  mixer_kwargs={"is_causal": True} if takes_flag else None).double().eval()
    assert model.position_embedding is None
    inputs = torch.rand(2, SEQ_LEN, dtype=torch.float64)
    changed = inputs.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        logits = model(inputs)
        assert logits.shape == (2, 4) and torch.isfinite(logits).all()
        assert not torch.allclose(model(changed), logits)


def test_bad_inputs_and_options_raise_clear_errors() -> None:
    model = _tiny("softmax")
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 63\); expected .* \(B, 64, 1\)"):
        model(torch.rand(2, SEQ_LEN - 1))
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 64, 2\)"):
        model(torch.rand(2, SEQ_LEN, 2))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(2, SEQ_LEN, dtype=torch.long))
    with pytest.raises(ValueError, match="pool='last' needs causal=True"):
        _tiny("softmax", pool="last")
    with pytest.raises(ValueError, match="pool='max'"):
        _tiny("softmax", pool="max")
    with pytest.raises(ValueError, match="not causal"):
        _tiny("fourier_karat", causal=True)
    with pytest.raises(ValueError, match="is_causal"):
        _tiny("neighborhood_attention_1d", causal=True)
    with pytest.raises(ValueError, match="layout"):
        _tiny("window_attention_2d")
    with pytest.raises(KeyError, match="usable mixers: softmax.*fourier_karat"):
        _tiny("nope")


def test_size_options_are_filled_with_seq_len() -> None:
    assert _tiny("fourier_karat").blocks[0].mixer.seq_len == SEQ_LEN
    assert _tiny("base_conv").blocks[0].mixer.kernel.shape == (16, SEQ_LEN)
    assert _tiny("base_conv", mixer_kwargs={"l_max": 8}).blocks[0].mixer.kernel.shape == (16, 8)
