"""The drop-in features of lightning_attention and linear_attention (attnzoo.ops.lightning.sequences), in every form,
against definitions written out another way: grouped KV heads are repeated heads, key padding is the state
recurrence with the padded tokens' updates left out (without decay: the sequence with the padded tokens removed),
packed sequences are separate calls. These pin the reference that the contract compares the other forms with."""

from __future__ import annotations

import pytest
import torch

from attnzoo.ops import lightning_attention
from attnzoo.ops.linear import linear_attention
from attnzoo.ops.linear.feature_maps import apply_feature_map
from attnzoo.registry import NotSupportedError

IMPLS = ["reference", "chunked", "recurrent"]


def _t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_grouped_kv_heads_are_repeated_heads(impl: str) -> None:
    q, k, v, decay, state = _t(2, 6, 19, 4), _t(2, 2, 19, 4), _t(2, 2, 19, 3), torch.rand(6).double(), _t(2, 6, 4, 3)
    repeated = [t.repeat_interleave(3, dim=1) for t in (k, v)]
    grouped = lightning_attention(q, k, v, decay, state, True, 5, impl=impl, enable_gqa=True)
    for out, expected in zip(grouped, lightning_attention(q, *repeated, decay, state, True, 5, impl=impl)):
        _close(out, expected)
    for causal in (True, False):
        options = {"feature_map": "softmax_kernel", "num_features": 5, "is_causal": causal, "block_size": 4,
                   "impl": impl}
        _close(linear_attention(q, k, v, enable_gqa=True, **options), linear_attention(q, *repeated, **options))


def _padded_recurrence(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, state: torch.Tensor,
                       pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``S_t = λ S_{t-1} + [t not padded] k_t v_tᵀ``, ``o_t = S_tᵀ q_t``, one (batch, head) at a time."""
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    final = torch.empty_like(state)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            s = state[b, h]
            for t in range(q.shape[2]):
                s = torch.exp(-decay[h]) * s
                if not pad[b, t]:
                    s = s + torch.outer(k[b, h, t], v[b, h, t])
                out[b, h, t] = q[b, h, t] @ s
            final[b, h] = s
    return out, final


@pytest.mark.parametrize("impl", IMPLS)
def test_key_padding_leaves_the_padded_updates_out_of_the_recurrence(impl: str) -> None:
    """With decay a padded token still takes one decay step (positions are kept, as ALiBi's distances under key
    padding in softmax attention), but its key and value enter nothing."""
    q, k, v, decay, state = _t(2, 3, 17, 4), _t(2, 3, 17, 4), _t(2, 3, 17, 5), torch.rand(3).double(), _t(2, 3, 4, 5)
    pad = torch.rand(2, 17) < 0.4
    pad[0, :3] = True  # left padding
    pad[1, -4:] = True  # right padding
    out, final = lightning_attention(q, k, v, decay, state, True, 4, impl=impl, key_padding_mask=pad)
    expected_out, expected_final = _padded_recurrence(q, k, v, decay, state, pad)
    _close(out, expected_out)
    _close(final, expected_final)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("feature_map", ["elu", "relu", "softmax_kernel"])
@pytest.mark.parametrize("causal", [True, False])
def test_key_padding_is_removing_the_padded_tokens(impl: str, feature_map: str, causal: bool) -> None:
    """Without decay the positions do not matter: the unpadded queries' outputs and the final state are those of
    the sequence with the padded tokens removed (normaliser included: φ(0) is not 0 for elu + 1 or the softmax
    kernel, so padding must act after the feature map)."""
    q, k, v = _t(2, 2, 15, 4), _t(2, 2, 15, 4), _t(2, 2, 15, 3)
    pad = torch.rand(2, 15) < 0.4
    pad[:, 0] = False
    options = {"feature_map": feature_map, "is_causal": causal, "normalize": feature_map != "relu",
               "num_features": 6, "block_size": 4, "impl": impl}
    out, final = linear_attention(q, k, v, output_final_state=True, key_padding_mask=pad, **options)
    for b in range(2):
        keep = ~pad[b]
        removed, removed_final = linear_attention(*(t[b:b + 1, :, keep] for t in (q, k, v)),
                                                  output_final_state=True, **options)
        _close(out[b:b + 1, :, keep], removed)
        _close(final[b:b + 1], removed_final)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_padded_keys_and_values_can_hold_anything(impl: str) -> None:
    """Padded rows are replaced, not multiplied by zero: non-finite padding changes no output and no gradient."""
    q, k, v = _t(2, 2, 12, 4), _t(2, 2, 12, 4), _t(2, 2, 12, 3)
    pad = torch.zeros(2, 12, dtype=torch.bool)
    pad[:, 8:] = True
    junk_k, junk_v = k.clone(), v.clone()
    junk_k[:, :, 8:], junk_v[:, :, 8:] = float("inf"), float("nan")
    decay = torch.rand(2).double()
    for op in (lambda *x: lightning_attention(*x, decay, block_size=5, impl=impl,
                                              key_padding_mask=pad),
               lambda *x: linear_attention(*x, block_size=5, impl=impl, key_padding_mask=pad)):
        clean = op(q, k, v)
        junk_k.requires_grad_(True)
        dirty = op(q, junk_k, junk_v)
        _close(dirty, clean)
        (grad,) = torch.autograd.grad(dirty.sum(), junk_k)
        assert torch.isfinite(grad).all() and (grad[:, :, 8:] == 0).all()
        junk_k = junk_k.detach()


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_sequences_are_separate_calls(impl: str) -> None:
    lengths = (4, 1, 9, 6)
    q, k, v, decay = _t(1, 4, 20, 4), _t(1, 2, 20, 4), _t(1, 2, 20, 3), torch.rand(4).double()
    pad = torch.rand(1, 20) < 0.3
    cu = torch.tensor([0, *lengths]).cumsum(0)
    pieces = list(zip(cu.tolist(), cu[1:].tolist()))
    calls = {
        "lightning": lambda *x, **kw: lightning_attention(*x, decay, block_size=3, impl=impl, enable_gqa=True,
                                                          **kw),
        "causal": lambda *x, **kw: linear_attention(*x, block_size=3, impl=impl, enable_gqa=True, **kw),
        "non-causal": lambda *x, **kw: linear_attention(*x, "softmax_kernel", is_causal=False, num_features=5,
                                                        impl=impl, enable_gqa=True, **kw),
    }
    for name, call in calls.items():
        packed = call(q, k, v, cu_seqlens=cu, key_padding_mask=pad)
        separate = torch.cat([call(*(t[:, :, a:b] for t in (q, k, v)), key_padding_mask=pad[:, a:b])
                              for a, b in pieces], dim=2)
        torch.testing.assert_close(packed, separate, atol=1e-10, rtol=1e-10, msg=name)


def test_the_feature_map_runs_before_the_padding() -> None:
    """elu + 1 of a zero key is 1: zeroing raw keys would still add the padded values."""
    assert (apply_feature_map(torch.zeros(3), "elu", None) == 1).all()


OPS = {"lightning": lambda *x, **kw: lightning_attention(*x, **kw),
       "linear": lambda *x, **kw: linear_attention(*x, **kw)}


@pytest.mark.parametrize("op", OPS)
def test_bad_drop_in_inputs_are_named(op: str) -> None:
    call = OPS[op]
    q, k, v = _t(1, 4, 10, 4), _t(1, 4, 10, 4), _t(1, 4, 10, 4)
    cu = torch.tensor([0, 4, 10])
    with pytest.raises(ValueError, match="cu_seqlens with initial_state"):
        call(q, k, v, output_final_state=True, cu_seqlens=cu)
    with pytest.raises(ValueError, match="cu_seqlens with initial_state"):
        state = _t(1, 4, 4, 4 + (op == "linear"))
        call(q, k, v, initial_state=state, cu_seqlens=cu)
    for nk in (12, 1):
        with pytest.raises(ValueError, match="Nk == Nq.*initial_state"):
            call(q, _t(1, 4, nk, 4), _t(1, 4, nk, 4))
    with pytest.raises(ValueError, match="enable_gqa=True"):
        call(q, k[:, :2], v[:, :2])
    with pytest.raises(ValueError, match="a multiple of the key's"):
        call(q, k[:, :3], v[:, :3], enable_gqa=True)
    with pytest.raises(ValueError, match="key_padding_mask"):
        call(q, k, v, key_padding_mask=torch.zeros(1, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch 1"):
        call(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1), cu_seqlens=cu)
    for kwargs, feature in (({"attn_mask": torch.ones(10, 10, dtype=torch.bool)}, "attn_mask"),
                            ({"dropout_p": 0.1}, "dropout"), ({"return_weights": True}, "return_weights")):
        with pytest.raises(NotSupportedError, match=feature):
            call(q, k, v, **kwargs)


@pytest.mark.parametrize(("variant", "options"), [("lightning_attention", {}),
                                                  ("linear_attention", {"is_causal": False})])
def test_linear_layers_take_key_padding_and_packed_sequences(variant: str, options: dict) -> None:
    """The layers pass key_padding_mask / cu_seqlens to their op: packed sequences equal separate calls; trailing
    padding changes nothing before it (causal) and is as if removed (non-causal)."""
    import attnzoo

    layer = attnzoo.create(variant, dim=16, num_heads=2, **options).double()
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    packed = layer(x, cu_seqlens=torch.tensor([0, 5, 12]))
    torch.testing.assert_close(packed, torch.cat([layer(x[:, :5]), layer(x[:, 5:])], dim=1), atol=1e-10, rtol=0)
    padding = torch.zeros(1, 12, dtype=torch.bool)
    padding[0, 10:] = True
    padded = layer(x, key_padding_mask=padding)
    if variant == "lightning_attention":
        torch.testing.assert_close(padded[:, :10], layer(x)[:, :10], atol=1e-10, rtol=0)
        assert not torch.allclose(padded[:, 10:], layer(x)[:, 10:])
    else:  # non-causal: the padded tokens are as if removed, for every unpadded query
        torch.testing.assert_close(padded[:, :10], layer(x[:, :10]), atol=1e-10, rtol=0)
