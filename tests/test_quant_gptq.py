"""GPTQ (arXiv 2210.17323) and its round-to-nearest baseline: bit for bit against a transcription of the official
``fasterquant`` / ``add_batch`` / min-max quantizer of IST-DASLab/gptq (``gptq.py`` at 9f2abd3, ``quant.py``),
the paper's identities, GPTQ's advantage over RTN on the calibration objective, and the model-level driver on
attnzoo and Hugging Face models (copy semantics, padding dropped, bad input)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from attnzoo.quant import Granularity, PackedLinear, QuantLinear, UniformQuantizer, pack, quantize, weight_only
from attnzoo.quant.methods import (
    GPTQOptions,
    HessianAccumulator,
    calibration_loss,
    gptq,
    gptq_quantize,
    rtn_quantize,
)

# ---------------------------------------------------------------------------------------------------------------
# the official code, transcribed (only the Linear path; torch.cuda.synchronize and prints dropped)


def official_quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


class OfficialQuantizer:
    """quant.py ``Quantizer.configure(bits, perchannel=True, sym=False)`` + ``find_params(x, weight=True)``."""

    def __init__(self, bits):
        self.maxq = torch.tensor(2 ** bits - 1)
        self.scale = torch.zeros(1)

    def find_params(self, x):
        tmp = torch.zeros(x.shape[0])
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp] = -1
        xmax[tmp] = +1
        self.scale = (xmax - xmin) / self.maxq
        self.zero = torch.round(-xmin / self.scale)
        self.scale = self.scale.reshape(-1, 1)
        self.zero = self.zero.reshape(-1, 1)

    def ready(self):
        return torch.all(self.scale != 0)


def official_add_batch(state, inp):
    if len(inp.shape) == 2:
        inp = inp.unsqueeze(0)
    tmp = inp.shape[0]
    inp = inp.reshape((-1, inp.shape[-1])).t()
    state["H"] *= state["nsamples"] / (state["nsamples"] + tmp)
    state["nsamples"] += tmp
    inp = math.sqrt(2 / state["nsamples"]) * inp.float()
    state["H"] += inp.matmul(inp.t())


def official_fasterquant(weight, H, quantizer, blocksize=128, percdamp=.01, groupsize=-1, actorder=False,
                         static_groups=False):
    W = weight.clone().float()
    columns = W.shape[1]
    if not quantizer.ready():
        quantizer.find_params(W)
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if static_groups:
        groups = []
        for i in range(0, columns, groupsize):
            q = copy.deepcopy(quantizer)
            q.find_params(W[:, i:(i + groupsize)])
            groups.append(q)
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)
    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if groupsize != -1:
                if not static_groups:
                    if (i1 + i) % groupsize == 0:
                        quantizer.find_params(W[:, (i1 + i):(i1 + i + groupsize)])
                else:
                    idx = i1 + i
                    if actorder:
                        idx = perm[idx]
                    quantizer = groups[idx // groupsize]
            q = official_quantize(w.unsqueeze(1), quantizer.scale, quantizer.zero, quantizer.maxq).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        Losses[:, i1:i2] = Losses1 / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if actorder:
        Q = Q[:, invperm]
    return Q, torch.sum(Losses)


# ---------------------------------------------------------------------------------------------------------------


def correlated_inputs(generator: torch.Generator, tokens: int, columns: int) -> torch.Tensor:
    mix = torch.randn(columns, columns, generator=generator) / math.sqrt(columns)
    scales = torch.rand(columns, generator=generator) * 3 + 0.1
    return torch.randn(tokens, columns, generator=generator) @ mix * scales


def official_hessian(batches: list[torch.Tensor], columns: int) -> torch.Tensor:
    state = {"H": torch.zeros(columns, columns), "nsamples": 0}
    for b in batches:
        official_add_batch(state, b)
    return state["H"]


@pytest.mark.parametrize("case", [
    dict(group=0, act_order=False, static=False, block=128),
    dict(group=0, act_order=True, static=False, block=16),
    dict(group=16, act_order=False, static=False, block=24),   # groups start inside blocks: the stale-W quirk
    dict(group=16, act_order=False, static=True, block=32),
    dict(group=16, act_order=True, static=True, block=32),
], ids=["per-channel", "act-order", "groups", "static-groups", "act-order-static-groups"])
def test_gptq_equals_the_official_fasterquant_bit_for_bit(case) -> None:
    g = torch.Generator().manual_seed(0)
    rows, columns = 24, 64
    weight = torch.randn(rows, columns, generator=g)
    batches = [correlated_inputs(g, 40, columns).reshape(2, 20, columns), correlated_inputs(g, 30, columns)]
    batches[0][..., 5] = batches[1][:, 5] = 0  # a dead input column
    ours_h = HessianAccumulator(columns)
    for b in batches:
        ours_h.add(b)
    theirs_h = official_hessian(batches, columns)
    assert torch.equal(ours_h.hessian, theirs_h) and ours_h.samples == 3
    granularity = Granularity.per_group(case["group"]) if case["group"] else Granularity.per_row()
    quantizer = UniformQuantizer(3, symmetric=False, granularity=granularity)
    options = GPTQOptions(block_size=case["block"], act_order=case["act_order"], static_groups=case["static"])
    ours = gptq_quantize(weight, ours_h.hessian, quantizer, options)
    theirs, loss = official_fasterquant(weight, theirs_h, OfficialQuantizer(3), blocksize=case["block"],
                                        groupsize=case["group"] or -1, actorder=case["act_order"],
                                        static_groups=case["static"])
    assert torch.equal(ours.weight, theirs)
    torch.testing.assert_close(ours.loss, loss, rtol=1e-6, atol=0)
    assert torch.equal(quantizer.quantize(ours.weight, ours.params), ours.weight)  # on the grid of its params
    assert bool((ours.weight[:, 5] == 0).all())


def test_identity_hessian_gives_round_to_nearest() -> None:
    """With H = I (no correlation) the error feedback U_jk vanishes for k > j: GPTQ is RTN."""
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(16, 48, generator=g, dtype=torch.float64)
    for granularity in (Granularity.per_row(), Granularity.per_group(12), Granularity.per_tensor()):
        quantizer = UniformQuantizer(4, symmetric=False, granularity=granularity)
        ours = gptq_quantize(weight, torch.eye(48, dtype=torch.float64), quantizer, GPTQOptions(block_size=20))
        assert torch.equal(ours.weight, rtn_quantize(weight, quantizer).weight)


def test_gptq_beats_round_to_nearest_on_the_calibration_objective_over_seeds() -> None:
    wins, ratios = 0, []
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        weight = torch.randn(32, 64, generator=g)
        acc = HessianAccumulator(64)
        acc.add(correlated_inputs(g, 256, 64))
        quantizer = UniformQuantizer(3, granularity=Granularity.per_row())
        q = gptq_quantize(weight, acc.hessian, quantizer).weight
        ours = calibration_loss(weight, q, acc.hessian)
        rtn = calibration_loss(weight, rtn_quantize(weight, quantizer).weight, acc.hessian)
        wins += int(ours <= rtn)
        ratios.append(float(ours / rtn))
    assert wins == 8 and max(ratios) < 0.9, ratios


def test_loss_estimate_is_half_the_weighted_column_errors() -> None:
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(8, 32, generator=g, dtype=torch.float64)
    acc = HessianAccumulator(32, dtype=torch.float64)
    acc.add(correlated_inputs(g, 100, 32).double())
    result = gptq_quantize(weight, acc.hessian, UniformQuantizer(4, granularity=Granularity.per_row()),
                           GPTQOptions(damp=0.0))
    # with no damping and a single block, GPTQ's loss is exactly the objective of the rounded weight / 2
    torch.testing.assert_close(result.loss, calibration_loss(weight, result.weight, acc.hessian) / 2,
                               rtol=1e-8, atol=0)


def test_bad_arguments_name_themselves() -> None:
    w, h = torch.randn(4, 8), torch.eye(8)
    q = UniformQuantizer(4, granularity=Granularity.per_row())
    with pytest.raises(ValueError, match="hessian has shape"):
        gptq_quantize(w, torch.eye(7), q)
    with pytest.raises(ValueError, match="group_size=3 does not divide"):
        gptq_quantize(w, h, UniformQuantizer(4, granularity=Granularity.per_group(3)))
    with pytest.raises(ValueError, match="static_groups=True"):
        gptq_quantize(w, h, UniformQuantizer(4, granularity=Granularity.per_group(4)), GPTQOptions(act_order=True))
    with pytest.raises(ValueError, match="per input channel"):
        gptq_quantize(w, h, UniformQuantizer(4, granularity=Granularity.per_channel(1)))
    with pytest.raises(ValueError, match="block_size"):
        GPTQOptions(block_size=0)
    with pytest.raises(ValueError, match="bits=17"):
        UniformQuantizer(17)
    with pytest.raises(ValueError, match="not positive definite"):
        gptq_quantize(w, -torch.eye(8), q)
    with pytest.raises(ValueError, match="layer input has shape"):
        HessianAccumulator(8).add(torch.randn(2, 3, 7))


def test_model_level_gptq_is_a_copy_better_than_rtn_and_packs() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16)).eval()
    g = torch.Generator().manual_seed(3)
    data = correlated_inputs(g, 512, 32)  # one distribution: calibrate on half, test on the other half
    calibration, test = [data[:128], data[128:256]], data[256:]
    before = copy.deepcopy(model.state_dict())
    recipe = weight_only(UniformQuantizer(3, symmetric=False, granularity=Granularity.per_group(16)))
    q = gptq(model, recipe, calibration)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    rtn = quantize(model, recipe)
    with torch.no_grad():
        exact = model(test)
        err_gptq = float((q(test) - exact).norm())
        err_rtn = float((rtn(test) - exact).norm())
        packed = pack(q)
        assert isinstance(packed[0], PackedLinear) and torch.equal(packed(test), q(test))
    assert err_gptq < err_rtn
    fresh = quantize(model, recipe)  # a GPTQ state_dict (weights + frozen parameters) loads into a fresh copy
    fresh.load_state_dict(q.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(test), q(test))
    with pytest.raises(ValueError, match="calibration is empty"):
        gptq(model, recipe, [])
    with pytest.raises(TypeError, match="pass \\[tensor\\]"):
        gptq(model, recipe, torch.randn(4, 32))
    with pytest.raises(ValueError, match="layer '0'.*layer input has shape"):
        gptq(model, recipe, [torch.randn(4, 31)])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_padding_is_dropped_from_the_hessian_of_a_hugging_face_bert() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(4)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(1, 64, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    padded = [{"input_ids": ids, "attention_mask": mask}]
    garbage = ids.clone()
    garbage[mask == 0] = 7  # other padding tokens: only the real ones may matter
    recipe = weight_only(UniformQuantizer(4, granularity=Granularity.per_row()))
    a = gptq(model, recipe, padded, sequential=False)
    b = gptq(model, recipe, [{"input_ids": garbage, "attention_mask": mask}], sequential=False)
    for (name, la), lb in zip(a.named_modules(), b.modules()):
        if isinstance(la, QuantLinear):
            torch.testing.assert_close(la.weight, lb.weight, rtol=0, atol=1e-6, msg=name)
    seq = gptq(model, recipe, padded)  # true sequential differs from one pass, still a valid quantization
    assert sum(isinstance(m, QuantLinear) and m.weight_params is not None for m in seq.modules()) == 6
