"""Mesa (arXiv 2111.11124): 8-bit saved activations. The catalog's invariants: forward bit-identical, pack error
below one step inside the running range, unbiased, gradients close to exact autograd, 1 byte per saved element
against 4, per-group ranges equal the per-head min and max at the first call."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.quant.mesa import MesaSavedActivations, RunningRangeQuantizer
from attnzoo.quant.mesa.grouping import from_groups, group_dim, to_groups


class Block(nn.Module):
    """A pre-norm transformer block: attnzoo's softmax attention and a GELU MLP."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = attnzoo.create("softmax_attention", dim=dim, num_heads=heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _block_and_input(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    return Block(), torch.randn(2, 64, 32, requires_grad=True)


def _grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out = model(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    grads = torch.autograd.grad((out * weights).sum(), [x, *model.parameters()])
    return out, list(grads)


def test_forward_is_exact_and_gradients_are_close() -> None:
    block, x = _block_and_input()
    exact_out, exact = _grads(block, x)
    mesa = MesaSavedActivations(block, groups=4)
    out, grads = _grads(mesa, x)
    assert torch.equal(out, exact_out)
    for got, want in zip(grads, exact):
        cosine = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)
        assert cosine > 0.99, cosine
        assert (got - want).norm() / want.norm() < 0.1
    assert len(mesa.quantizers) > 5  # LayerNorm, Linear, softmax and matmul inputs each got their own range


def test_fewer_bits_degrade_gracefully() -> None:
    block, x = _block_and_input()
    _, exact = _grads(block, x)
    errors = []
    for bits in (8, 4, 2):
        _, grads = _grads(MesaSavedActivations(block, groups=4, bits=bits), x)
        errors.append(sum((g - e).norm() / e.norm() for g, e in zip(grads, exact)).item())
    assert errors[0] < errors[1] < errors[2]


def test_one_byte_per_saved_element() -> None:
    block, x = _block_and_input()
    mesa = MesaSavedActivations(block, groups=4)
    mesa(x).sum().backward()
    assert mesa.full_bytes > 0
    assert 3.9 < mesa.full_bytes / mesa.saved_bytes <= 4.0  # float32 -> bytes, plus scale and shift per group
    mesa.eval()
    with torch.no_grad():
        mesa(x)
    assert mesa.saved_bytes == 0


def test_parameters_are_saved_as_they_are() -> None:
    linear = nn.Linear(64, 64)
    mesa = MesaSavedActivations(linear, min_numel=0)
    x = torch.randn(8, 64, requires_grad=True)
    mesa(x).sum().backward()
    assert len(mesa.quantizers) == 1  # the input, not the weight
    assert mesa.full_bytes == x.numel() * 4


def test_pack_error_is_below_one_step_and_unbiased() -> None:
    x = torch.randn(4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    quantizer = RunningRangeQuantizer()
    packed = quantizer.pack(x, groups=4)
    step = (1 / packed.scale).repeat_interleave(2)[None, :, None, None]  # per head, 2 heads a group
    assert ((packed.unpack() - x).abs() < step).all()
    draws = torch.stack([quantizer.pack(x, 4, torch.Generator().manual_seed(s)).unpack() for s in range(400)])
    # the same x keeps the running range; a draw is x's lower or upper grid point, the upper one with
    # probability f (x's fraction of a step): the mean's standard error is step * sqrt(f (1 - f) / 400)
    y = (x - packed.shift.repeat_interleave(2)[None, :, None, None]) / step
    f = y - y.floor()
    sem = step * (f * (1 - f) / 400).sqrt()
    assert ((draws.mean(0) - x).abs() <= 5 * sem + 1e-4 * step).all()  # + float32 dequantization round-off


def test_first_call_sets_the_per_head_range_then_the_ema_follows() -> None:
    x = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    quantizer = RunningRangeQuantizer()
    quantizer.pack(x, groups=4)
    per_head = x.transpose(0, 1).reshape(4, -1)
    assert torch.equal(quantizer.shift, per_head.amin(1))
    assert torch.equal(quantizer.range, per_head.amax(1) - per_head.amin(1))
    y = 3 * x
    quantizer.pack(y, groups=4)
    new = y.transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(quantizer.range, 0.9 * (per_head.amax(1) - per_head.amin(1)) +
                               0.1 * (new.amax(1) - new.amin(1)))
    torch.testing.assert_close(quantizer.shift, 0.9 * per_head.amin(1) + 0.1 * new.amin(1))


@pytest.mark.parametrize("shape,groups,dim", [((3, 12), 4, 1), ((2, 5, 12), 3, 2), ((2, 6, 5, 7), 3, 1),
                                              ((2, 6, 5, 7), 6, 1), ((2, 5, 12), 5, None), ((4, 3, 2, 2, 2), 2,
                                                                                           None)])
def test_groups_follow_mesa_and_round_trip(shape, groups, dim) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    assert group_dim(x.shape, groups) == dim
    grouped, g = to_groups(x, groups)
    assert g == (1 if dim is None else groups)
    assert torch.equal(from_groups(grouped, g, x.shape), x)
    if dim is not None:  # group i holds the i-th slice of consecutive channels / heads
        size = shape[dim] // groups
        assert torch.equal(grouped[1].sort().values, x.narrow(dim, size, size).flatten().sort().values)


def test_constant_groups_are_stored_exactly() -> None:
    x = torch.full((2, 4, 8, 8), 1.5)
    assert torch.equal(RunningRangeQuantizer().pack(x, 4).unpack(), x)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="bits=9"):
        MesaSavedActivations(nn.Linear(2, 2), bits=9)
    with pytest.raises(ValueError, match="groups=0"):
        MesaSavedActivations(nn.Linear(2, 2), groups=0)
    with pytest.raises(ValueError, match="ema_decay=1.0"):
        MesaSavedActivations(nn.Linear(2, 2), ema_decay=1.0)


def test_the_training_comparison_reports_every_row(monkeypatch, tmp_path) -> None:
    """``python -m attnzoo.quant.mesa`` on a stand-in task (no data files): one row per setting, the Mesa row
    saving a quarter of the float32 bytes, the report written."""
    from attnzoo.quant.mesa import experiment

    class TinyTask(experiment.FashionMNISTTask):
        def prepare(self) -> None:
            g = torch.Generator().manual_seed(0)
            self._data = (torch.randn(64, 28, 28, generator=g), torch.randint(10, (64,), generator=g),
                          torch.randn(32, 28, 28, generator=g), torch.randint(10, (32,), generator=g))

    monkeypatch.setattr(experiment, "FashionMNISTTask", lambda: TinyTask(batch_size=8, test_examples=32, depth=1))
    assert experiment.main(["--steps", "2", "--bits", "8", "4", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "mesa.json").read_text())["rows"]
    assert [r["saved_activations"] for r in rows] == ["float32", "mesa 8-bit", "mesa 4-bit"]
    assert rows[0]["saved_bytes"] == 0 and 3.9 < rows[1]["saved_float32_bytes"] / rows[1]["saved_bytes"] <= 4
    assert all(r["graph_bytes"] > 0 and 0 <= r["test_accuracy"] <= 1 for r in rows)
    assert "| mesa 4-bit |" in (tmp_path / "mesa.md").read_text()


def test_the_training_comparison_refuses_bad_settings_before_training(monkeypatch) -> None:
    from attnzoo.quant.mesa import experiment

    monkeypatch.setattr(experiment, "FashionMNISTTask", lambda: pytest.fail("a bad setting must fail before the data"))
    with pytest.raises(ValueError, match="bits=9"):
        experiment.run(steps=1, bits=(8, 9))
    with pytest.raises(SystemExit):
        experiment.main(["--steps", "0"])
