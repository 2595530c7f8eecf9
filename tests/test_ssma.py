"""SSMA fusion (arXiv 1808.03833, paper 58): the gate's limits (σ ≈ 1 leaves ``BN(W_f ∗ cat(x, y))``, gates in
(0, 1), gradients reach both modalities), and the official TF block (DeepSceneSeg/SSMA commit 70669056,
``models/SSMA.py`` ``_setup`` with ``network_base.conv_bias`` / ``conv_batchN_relu`` / ``batch_norm``)
transcribed on its channels-last layout (tests/official_tf_layers.py) with our weights copied in. The
registry-wide contract (tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_comparison import close, randn
from official_tf_layers import tf_conv2d_same

from attnzoo.layers import SSMAFusion
from attnzoo.ops.ssma import ssma_fusion

IMPLS = ["conv", "reference"]


def official_ssma(fusion: SSMAFusion, x_rgb: torch.Tensor, x_depth: torch.Tensor) -> torch.Tensor:
    """``_setup``'s encoder fusion, channels last (training-mode ``batch_norm``: ``tf.nn.moments`` over
    ``[0, 1, 2]``, ``variance_epsilon=1e-5``)::

        in1 = concat([eAspp_rgb, eAspp_depth], 3)
        ssma_red = relu(conv_bias(in1, 3, 1, 32, 'conv511'))
        ssma_expand = sigmoid(conv_bias(ssma_red, 3, 1, 512, 'conv512'))
        in2 = multiply(in1, ssma_expand)
        in3 = conv_batchN_relu(in2, 1, 1, 256, 'conv515', relu=False)
    """
    def kernel(conv):
        return conv.weight.permute(2, 3, 1, 0)

    in1 = torch.cat([x_rgb, x_depth], dim=3)
    ssma_red = torch.relu(tf_conv2d_same(in1, kernel(fusion.reduce)) + fusion.reduce.bias)
    ssma_expand = torch.sigmoid(tf_conv2d_same(ssma_red, kernel(fusion.expand)) + fusion.expand.bias)
    in2 = in1 * ssma_expand
    conv_out = tf_conv2d_same(in2, kernel(fusion.fuse))
    mean = conv_out.mean(dim=(0, 1, 2))
    var = conv_out.var(dim=(0, 1, 2), unbiased=False)
    return (conv_out - mean) * torch.rsqrt(var + 1e-5) * fusion.norm.weight + fusion.norm.bias


def test_official_block_with_copied_weights() -> None:
    torch.manual_seed(0)
    fusion = SSMAFusion(24, dim_y=8, out_dim=10, reduction=4).double()
    with torch.no_grad():
        fusion.norm.weight.normal_()
        fusion.norm.bias.normal_()
    x, y = randn(3, 24, 7, 9).requires_grad_(), randn(3, 8, 7, 9, seed=1).requires_grad_()
    out = fusion(x, y)
    expected = official_ssma(fusion, x.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    close(out, expected, atol=1e-10)
    cotangent = randn(*out.shape, seed=3)
    params = [x, y, *fusion.parameters()]
    got = torch.autograd.grad(out, params, cotangent)
    want = torch.autograd.grad(expected, params, cotangent)
    for g, w in zip(got, want, strict=True):
        close(g, w, atol=1e-9)


def test_official_initialisation() -> None:
    torch.manual_seed(0)
    fusion = SSMAFusion(256)
    assert fusion.reduce.out_channels == 32 and fusion.expand.out_channels == 512 and fusion.fuse.out_channels == 256
    assert torch.equal(fusion.reduce.bias, torch.full((32,), 0.01))
    assert torch.equal(fusion.expand.bias, torch.full((512,), 0.01))
    assert fusion.fuse.bias is None
    std = (2.0 / (512 * 9)) ** 0.5
    assert fusion.reduce.weight.abs().max() <= 2 * std + 1e-7


@pytest.mark.parametrize("impl", IMPLS)
def test_open_gate_is_a_plain_fusion(impl: str) -> None:
    """A gate bias of +60 saturates σ to 1 (in float64 to 1 − 1e-26): the block is ``W_f ∗ cat(x, y) + b_f``."""
    x, y = randn(2, 5, 6, 7), randn(2, 3, 6, 7, seed=1)
    w_r, w_e, w_f = randn(2, 8, 3, 3, seed=2) * 0.01, randn(8, 2, 3, 3, seed=3) * 0.01, randn(4, 8, 1, 1, seed=4)
    open_gate = torch.full((8,), 60.0, dtype=torch.float64)
    ones, zeros = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    out = ssma_fusion(x, y, w_r, w_e, w_f, ones, zeros, zeros, ones, expand_bias=open_gate,
                      fuse_bias=randn(4, seed=5), eps=1e-5, impl=impl)   # batch norm with identity statistics
    close(out, F.conv2d(torch.cat((x, y), 1), w_f, randn(4, seed=5)) / (1 + 1e-5) ** 0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_training_batch_norm_updates_the_running_statistics_as_batchnorm(impl: str) -> None:
    torch.manual_seed(0)
    fusion = SSMAFusion(6, dim_y=4, reduction=2, impl=impl).double()
    twin = SSMAFusion(6, dim_y=4, reduction=2).double()
    twin.load_state_dict(fusion.state_dict())
    x, y = randn(3, 6, 5, 4), randn(3, 4, 5, 4, seed=1)
    out = fusion(x, y)
    both = torch.cat((x, y), 1)
    gate = torch.sigmoid(twin.expand(torch.relu(twin.reduce(both))))
    close(out, twin.norm(twin.fuse(both * gate)))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        close(getattr(fusion.norm, name).double(), getattr(twin.norm, name).double())
    fusion.eval()
    twin.eval()
    close(fusion(x, y), twin.norm(twin.fuse(both * gate)))


def test_gates_lie_in_the_unit_interval_and_both_modalities_get_gradients() -> None:
    torch.manual_seed(0)
    fusion = SSMAFusion(12, dim_y=6, reduction=3)
    x, y = torch.randn(2, 12, 5, 5, requires_grad=True), torch.randn(2, 6, 5, 5, requires_grad=True)
    gate = fusion.gate(x, y)
    assert gate.shape == (2, 18, 5, 5) and bool(((gate > 0) & (gate < 1)).all())
    fusion(x, y).square().sum().backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    assert fusion.reduce.weight.grad.abs().sum() > 0


def test_layer_input_errors() -> None:
    fusion = SSMAFusion(16, dim_y=8)
    with pytest.raises(ValueError, match=r"y has shape \(1, 16, 4, 4\), 16 channels; expected \(B, C=8, H, W\)"):
        fusion(torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4))
    with pytest.raises(ValueError, match=r"y has shape \(1, 8, 3, 4\); expected x's batch and grid"):
        fusion(torch.randn(1, 16, 4, 4), torch.randn(1, 8, 3, 4))
    with pytest.raises(ValueError, match=r"dim \+ dim_y = 12 with reduction=16 leaves no gate channels"):
        SSMAFusion(6)
