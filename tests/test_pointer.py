"""Pointer attention (Pointer Networks, arXiv 1506.03134), its layer, the Pointer Network and the sorting task.

The registry contract (``tests/test_contract.py``, spec ``attnzoo/ops/pointer/testing.py``) already compares the
chunked implementation with the reference on its cases; here: many uneven chunks, gradcheck with a mask, the
distribution's invariants (rows sum to 1, masked positions exactly 0, masking renormalises the rest,
permutation equivariance), the layer, the network (teacher forcing equals a step-by-step decode; overfits a
fixed batch, deterministically) and the task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo import cli
from attnzoo.layers.pointer import PointerAttention
from attnzoo.models.mixers import SEQUENCE_LAYOUT, usable_mixers
from attnzoo.models.pointer_network import PointerNetwork
from attnzoo.ops.pointer import pointer_attention
from attnzoo.ops.pointer.chunked import CHUNK_ELEMENTS, chunk_size, pointer_chunked
from attnzoo.ops.pointer.reference import pointer_reference
from attnzoo.tasks import TASKS
from attnzoo.tasks.harness import evaluate_mixers
from attnzoo.tasks.sorting import SortingTask, pointer_loss, sorting_accuracy, sorting_data
from attnzoo.train import TrainConfig


def inputs(b: int = 2, nq: int = 9, nk: int = 7, dd: int = 5, de: int = 4, a: int = 6, seed: int = 0,
           masked: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"decoder": torch.randn(b, nq, dd, generator=g, dtype=torch.float64),
           "encoder": torch.randn(b, nk, de, generator=g, dtype=torch.float64),
           "w1": torch.randn(de, a, generator=g, dtype=torch.float64) / de**0.5,
           "w2": torch.randn(dd, a, generator=g, dtype=torch.float64) / dd**0.5,
           "v": torch.randn(a, generator=g, dtype=torch.float64)}
    for t in out.values():
        t.requires_grad_(True)
    if masked:
        mask = torch.rand(b, nq, nk, generator=g) < 0.5
        out["mask"] = mask.scatter(-1, torch.randint(nk, (b, nq, 1), generator=g), True)
    return out


def grads(out: torch.Tensor, tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    finite = torch.where(torch.isinf(out), 0, out)
    return torch.autograd.grad((finite * cot).sum(), [t for t in tensors.values() if t.requires_grad])


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_logits", [False, True])
@pytest.mark.parametrize("chunk_elements", [1, 100, CHUNK_ELEMENTS])  # 1 query a chunk, uneven chunks, one chunk
def test_chunked_equals_reference_forward_and_backward(masked: bool, return_logits: bool,
                                                        chunk_elements: int) -> None:
    x = inputs(masked=masked)
    mask = x.pop("mask", None)
    ref = pointer_reference(**x, mask=mask, return_logits=return_logits)
    out = pointer_chunked(**x, mask=mask, return_logits=return_logits, chunk_elements=chunk_elements)
    torch.testing.assert_close(out, ref, atol=1e-13, rtol=0)
    for g, r in zip(grads(out, x), grads(ref, x)):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=0)


def test_chunk_size_bounds_the_tanh_tensor() -> None:
    assert chunk_size(2, 7, 6, budget=100) == 1  # one query's 84 elements fit, two do not
    assert chunk_size(2, 7, 6, budget=1) == 1     # at least one query
    assert chunk_size(1, 10, 10, budget=1000) == 10
    assert chunk_size(0, 10, 10) >= 1             # empty batch


@pytest.mark.parametrize("impl", ["chunked", "reference"])
@pytest.mark.parametrize("return_logits", [False, True])
def test_gradcheck_with_a_mask(impl: str, return_logits: bool) -> None:
    x = inputs(b=1, nq=3, nk=4, dd=3, de=2, a=3, masked=True)
    mask = x.pop("mask")

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        out = pointer_attention(*tensors, mask=mask, return_logits=return_logits, impl=impl)
        return torch.where(mask, out, 0)  # masked logits are -inf: compare the allowed entries

    assert torch.autograd.gradcheck(fn, tuple(x.values()))


@pytest.mark.parametrize("impl", ["chunked", "reference"])
def test_rows_sum_to_one_and_masked_positions_are_exactly_zero(impl: str) -> None:
    x = inputs(masked=True)
    mask = x.pop("mask")
    p = pointer_attention(**x, mask=mask, impl=impl)
    torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1], dtype=p.dtype), atol=1e-14, rtol=0)
    assert (p[~mask] == 0).all() and (p[mask] > 0).all()
    logits = pointer_attention(**x, mask=mask, return_logits=True, impl=impl)
    assert torch.isneginf(logits[~mask]).all() and torch.isfinite(logits[mask]).all()
    torch.testing.assert_close(logits.softmax(-1), p, atol=1e-14, rtol=0)
    grad = torch.autograd.grad(p[..., 0].sum(), x["encoder"])[0]
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("impl", ["chunked", "reference"])
def test_masking_renormalises_the_allowed_positions(impl: str) -> None:
    """p_masked(j) = p(j) / Σ_{allowed} p for allowed j: the mask removes positions, it does not reshape the rest."""
    x = inputs(masked=True)
    mask = x.pop("mask")
    free = pointer_attention(**x, impl=impl)
    kept = free * mask
    torch.testing.assert_close(pointer_attention(**x, mask=mask, impl=impl), kept / kept.sum(-1, keepdim=True),
                               atol=1e-14, rtol=0)
    logits = pointer_attention(**x, return_logits=True, impl=impl)
    torch.testing.assert_close(pointer_attention(**x, mask=mask, return_logits=True, impl=impl)[mask], logits[mask])


@pytest.mark.parametrize("impl", ["chunked", "reference"])
def test_permutation_equivariance(impl: str) -> None:
    """Permuting the encoder positions permutes the output's columns; permuting the decoder steps, its rows."""
    x = inputs()
    p = pointer_attention(**x, impl=impl)
    keys, queries = torch.randperm(7, generator=torch.Generator().manual_seed(1)), torch.randperm(9)
    moved = {**x, "encoder": x["encoder"][:, keys], "decoder": x["decoder"][:, queries]}
    torch.testing.assert_close(pointer_attention(**moved, impl=impl), p[:, queries][:, :, keys], atol=1e-14, rtol=0)


def test_equation_on_one_entry() -> None:
    """u_ij = vᵀ tanh(W1 e_j + W2 d_i) written with the paper's matrix-vector products, one (i, j)."""
    x = {k: t.detach() for k, t in inputs().items()}
    u = pointer_attention(**x, return_logits=True)
    for b, i, j in [(0, 0, 0), (1, 8, 6), (0, 4, 2)]:
        e, d = x["encoder"][b, j], x["decoder"][b, i]
        expected = x["v"] @ torch.tanh(x["w1"].T @ e + x["w2"].T @ d)
        torch.testing.assert_close(u[b, i, j], expected, atol=1e-14, rtol=0)
        logits = torch.stack([x["v"] @ torch.tanh(x["w1"].T @ x["encoder"][b, k] + x["w2"].T @ d) for k in range(7)])
        torch.testing.assert_close(pointer_attention(**x)[b, i], logits.softmax(0), atol=1e-14, rtol=0)


class PeerAttention(torch.nn.Module):
    """``Attention`` of shirgur/PointerNet (``PointerNet.py`` at commit c7ed05066fb40d4f1832dd24de28da259293983c, the
    most used PyTorch Pointer Network; no official code exists), transcribed: ``input_linear`` (Linear with bias) on
    the decoder state, ``context_linear`` (1x1 Conv1d with bias) on the encoder outputs, ``att = V · tanh(inp +
    ctx)``, ``-inf`` where ``mask`` (True = excluded), softmax over the inputs (its implicit ``nn.Softmax()`` dim,
    1 for this 2-D input). Its attention-weighted context output is not a pointer and is left out."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.input_linear = torch.nn.Linear(dim, hidden)
        self.context_linear = torch.nn.Conv1d(dim, hidden, 1, 1)
        self.V = torch.nn.Parameter(torch.empty(hidden).uniform_(-1, 1))

    def forward(self, input: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: A002
        inp = self.input_linear(input).unsqueeze(2).expand(-1, -1, context.size(1))
        ctx = self.context_linear(context.permute(0, 2, 1))
        v = self.V.unsqueeze(0).expand(context.size(0), -1).unsqueeze(1)
        att = torch.bmm(v, torch.tanh(inp + ctx)).squeeze(1)
        att = att.masked_fill(mask, float("-inf"))
        return torch.softmax(att, dim=1)


@pytest.mark.parametrize("impl", ["chunked", "reference"])
def test_equals_the_peer_pointer_attention(impl: str) -> None:
    """Our op with the peer's weights (its two biases folded in as a constant-1 encoder feature) gives the peer's
    pointer distribution for each decoder step."""
    torch.manual_seed(0)
    peer = PeerAttention(6, 5).double()
    h, context = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 9, 6, dtype=torch.float64)
    excluded = torch.rand(4, 9) < 0.4
    excluded[:, 0] = False
    expected = peer(h, context, excluded)
    w1 = torch.cat([peer.context_linear.weight[:, :, 0].T,
                    (peer.context_linear.bias + peer.input_linear.bias)[None]])  # (6 + 1, 5)
    encoder = torch.cat([context, torch.ones(4, 9, 1, dtype=torch.float64)], dim=-1)
    out = pointer_attention(h[:, None], encoder, w1, peer.input_linear.weight.T, peer.V, mask=~excluded[:, None],
                            impl=impl)
    torch.testing.assert_close(out[:, 0], expected, atol=1e-14, rtol=0)


def test_one_input_position_gets_probability_one_and_empty_shapes_run() -> None:
    x = {k: t.detach() for k, t in inputs(nk=1).items()}
    assert (pointer_attention(**x) == 1).all()
    for impl in ("chunked", "reference"):
        assert pointer_attention(**{**x, "decoder": x["decoder"][:, :0]}, impl=impl).shape == (2, 0, 1)


def test_a_row_with_everything_masked_raises() -> None:
    x = inputs(masked=True)
    mask = x.pop("mask")
    mask[1, 3] = False
    with pytest.raises(ValueError, match=r"mask\[1, 3\] allows no input position \(1 such rows\)"):
        pointer_attention(**x, mask=mask)


def test_registered_without_a_layer_and_not_a_mixer() -> None:
    variant = attnzoo.get_variant("pointer_attention")
    assert variant.family == "heads" and variant.layer is None and variant.paper.arxiv == "1506.03134"
    assert "pointer_attention" not in usable_mixers([SEQUENCE_LAYOUT], causal=False)
    with pytest.raises(ValueError, match="has no layer"):
        attnzoo.create("pointer_attention")


# ---- the layer ------------------------------------------------------------------------------------------------

def test_layer_is_the_op_with_its_parameters() -> None:
    torch.manual_seed(0)
    layer = PointerAttention(8, 5)
    d, e = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    mask = torch.rand(2, 4, 6) < 0.7
    mask[..., 0] = True
    expected = pointer_attention(d, e, layer.w1, layer.w2, layer.v, mask=mask)
    torch.testing.assert_close(layer(d, e, mask=mask), expected)
    assert layer(d, torch.randn(2, 11, 8)).shape == (2, 4, 11)  # the same weights for any number of inputs
    assert "dim=8, attn_dim=5" in repr(layer)
    layer(d, e).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("impl", ["chunked", "reference"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_layer_under_autocast(impl: str, dtype: torch.dtype) -> None:
    """float32 parameters, low-precision activations: the op runs in the autocast dtype, close to float32, and
    gradients reach every parameter in float32."""
    torch.manual_seed(0)
    layer = PointerAttention(8, 6, impl=impl)
    d, e = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    weights = torch.randn(2, 5, 7)
    expected = layer(d, e)
    with torch.autocast("cpu", dtype=dtype):
        out = layer(d, e)
    assert out.dtype == dtype and (out.float() - expected).abs().max() < 1e-2
    (out.float() * weights).sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0
               for p in layer.parameters())


@pytest.mark.parametrize(("args", "error", "match"), [
    ((torch.randn(2, 4, 7), torch.randn(2, 6, 8)), ValueError, r"decoder: input has shape \(2, 4, 7\), 7 channels"),
    ((torch.randn(2, 4, 8), torch.randn(6, 8)), ValueError, r"encoder: input has shape \(6, 8\) \(2-D\)"),
    ((torch.randn(2, 4, 8), torch.randn(2, 6, 8).double()), TypeError, r"encoder: input dtype torch.float64"),
    ((torch.randn(2, 4, 8), torch.randn(3, 6, 8)), ValueError, r"encoder has shape \(3, 6, 8\); expected the "
                                                               r"decoder's batch 2"),
])
def test_layer_errors_name_the_argument(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        PointerAttention(8, 5)(*args)


@pytest.mark.parametrize(("kwargs", "match"), [({"dim": 0, "attn_dim": 4}, "dim=0: expected an int >= 1"),
                                              ({"dim": 4, "attn_dim": 2.0}, "attn_dim=2.0: expected an int")])
def test_layer_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PointerAttention(**kwargs)


# ---- the network ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_chosen", [False, True])
def test_teacher_forcing_equals_a_step_by_step_decode_fed_the_targets(mask_chosen: bool) -> None:
    torch.manual_seed(0)
    model = PointerNetwork(12, input_dim=2, attn_dim=7, mask_chosen=mask_chosen)
    x = torch.rand(3, 6, 2)
    targets = torch.stack([torch.randperm(6) for _ in range(3)])
    logits = model(x, targets)
    encoded, state = model.encode(x)
    step_input, allowed = model.go.expand(3, 1, 2), torch.ones(3, 1, 6, dtype=torch.bool)
    for i in range(6):
        decoded, state = model.decoder(step_input, state)
        expected = model.pointer(decoded, encoded, mask=allowed if mask_chosen else None, return_logits=True)
        torch.testing.assert_close(logits[:, i:i + 1], expected, atol=1e-6, rtol=0)
        allowed = allowed.scatter(-1, targets[:, i, None, None], False)
        step_input = x[torch.arange(3), targets[:, i]][:, None]
    if mask_chosen:  # step i may not point to targets[:i]
        for i in range(1, 6):
            assert torch.isneginf(logits[torch.arange(3)[:, None], i, targets[:, :i]]).all()


def test_masked_greedy_decode_gives_permutations() -> None:
    torch.manual_seed(0)
    model = PointerNetwork(8)
    pointers, logits = model.decode(torch.rand(20, 5, 1), mask_chosen=True)
    assert pointers.shape == (20, 5) and logits.shape == (20, 5, 5)
    assert (pointers.sort(-1).values == torch.arange(5)).all()
    assert (logits.argmax(-1) == pointers).all()


def _overfit(steps: int = 150) -> list[float]:
    torch.manual_seed(0)
    model = PointerNetwork(32)
    x, y = sorting_data(16, 5, torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = pointer_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    losses.append(sorting_accuracy(model.decode(x)[0], y)["exact_match"])
    return losses


@pytest.fixture
def one_thread():  # noqa: ANN201
    """One intra-op thread: these tiny LSTM steps run 20x slower with two threads on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_network_overfits_a_fixed_batch_deterministically(one_thread: None) -> None:
    losses = _overfit()
    assert losses[0] > 1.2 and losses[-2] < 0.1 * losses[0], (losses[0], losses[-2])  # ln 5 = 1.61 at the start
    assert losses[-1] == 1.0  # every sequence of the batch sorted by greedy decoding
    assert _overfit() == losses


def test_network_errors() -> None:
    model = PointerNetwork(8)
    x = torch.rand(2, 5, 1)
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 5\); expected \(B, n >= 1, input_dim=1\)"):
        model(x[..., 0], torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be a long tensor \(B, n\) = \(2, 5\)"):
        model(x, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets hold positions outside \[0, 5\)"):
        model(x, torch.full((2, 5), 5))
    with pytest.raises(TypeError, match="inputs must be a floating"):
        model.decode(torch.zeros(2, 5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="mask_chosen='yes': expected a bool"):
        PointerNetwork(8, mask_chosen="yes")


# ---- the sorting task -----------------------------------------------------------------------------------------

def test_sorting_data_is_seeded_and_sorted() -> None:
    x, y = sorting_data(50, 7, torch.Generator().manual_seed(0))
    again = sorting_data(50, 7, torch.Generator().manual_seed(0))
    assert torch.equal(x, again[0]) and torch.equal(y, again[1]) and x.shape == (50, 7, 1)
    ordered = torch.gather(x[..., 0], 1, y)
    assert (ordered[:, 1:] > ordered[:, :-1]).all() and ((x >= 0) & (x < 1)).all()


def test_sorting_accuracy() -> None:
    targets = torch.tensor([[0, 1, 2], [2, 1, 0]])
    assert sorting_accuracy(torch.tensor([[0, 1, 2], [2, 0, 1]]), targets) == {"exact_match": 0.5,
                                                                               "position_accuracy": 4 / 6}
    with pytest.raises(ValueError, match="pointers have shape"):
        sorting_accuracy(targets[:, :2], targets)


def test_sorting_task_on_the_harness(tmp_path: Path, one_thread: None) -> None:
    assert TASKS["sorting"] is SortingTask
    task = SortingTask(length=4, hidden=8, batch_size=4, test_examples=10)
    config = TrainConfig(steps=2, lr=1e-3, warmup_steps=1, progress=False, device="cpu")
    rows = evaluate_mixers(task, ("pointer_attention",), config, tmp_path, progress=False)
    assert rows[0]["mixer_kwargs"] == {"attn_dim": 8}
    for key in ("exact_match", "position_accuracy", "exact_match_masked", "position_accuracy_masked"):
        assert rows[0][key] in {i / 10 for i in range(11)} or key.startswith("position")
    assert (tmp_path / "sorting.json").exists()
    with pytest.raises(ValueError, match="mixer 'softmax' is not a pointer head"):
        evaluate_mixers(task, ("softmax",), config, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"unknown options \['window'\]"):
        evaluate_mixers(task, ("pointer_attention",), config, tmp_path, progress=False,
                        mixer_kwargs={"pointer_attention": {"window": 3}})
    with pytest.raises(ValueError, match="SortingTask length=1: expected an integer >= 2"):
        SortingTask(length=1)


def test_attnzoo_eval_sorting(tmp_path: Path, one_thread: None) -> None:
    argv = ["eval", "sorting", "--mixers", "pointer_attention", "--steps", "2", "--length", "3", "--hidden", "4",
            "--batch-size", "2", "--test-examples", "4", "--mask-chosen", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    doc = json.loads((tmp_path / "sorting.json").read_text())
    assert doc["settings"]["mask_chosen"] is True and doc["rows"][0]["exact_match"] in {0, 0.25, 0.5, 0.75, 1}


def test_loss_is_the_cross_entropy_of_every_step() -> None:
    torch.manual_seed(0)
    model = PointerNetwork(8)
    x, y = sorting_data(3, 5, torch.Generator().manual_seed(0))
    logits = model(x, y)
    expected = sum(F.cross_entropy(logits[:, i], y[:, i]) for i in range(5)) / 5
    torch.testing.assert_close(pointer_loss(model, x, y), expected)
