"""DiffQKV attention (Sigma, arXiv 2501.13629) and its grouped-query baselines: the reductions the paper states
(Appendix B.1: MHA, GQA, MQA are special cases; the head mapping is ``repeat_interleave`` of K and V separately),
the paper's own K/V group sharing (Appendix E), exact top-k at k = all keys, selective V fetching as defined,
Hugging Face ``LlamaAttention`` as the GQA peer, the layers' K transform and augmented Q, the KV-cache cost model
(Eq. 1, 2) and bad input. The registry-wide contract (tests/test_contract.py) already compares every
implementation with the reference on the spec's cases."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import attnzoo
from attnzoo.layers import DiffQKVAttention, GroupedQueryAttention, SoftmaxAttention
from attnzoo.ops import diffqkv_attention, kv_cache_bytes_per_token, shared_head_index, softmax_attention
from attnzoo.validation import ArgumentTypeError

IMPLS = ["sdpa", "grouped", "reference"]
TOP_K_IMPLS = ["grouped", "reference"]


def qkv(b: int, hq: int, hk: int, hv: int, n: int, d: int, dv: int, nk: int | None = None,
        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    nk = n if nk is None else nk
    return (torch.randn(b, hq, n, d, generator=g, dtype=torch.float64),
            torch.randn(b, hk, nk, d, generator=g, dtype=torch.float64),
            torch.randn(b, hv, nk, dv, generator=g, dtype=torch.float64))


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


# ---- reductions (Appendix B.1) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [False, True])
def test_equal_head_counts_are_multi_head_attention(impl: str, causal: bool) -> None:
    q, k, v = qkv(2, 4, 4, 4, 13, 8, 8)
    close(diffqkv_attention(q, k, v, causal, impl=impl), softmax_attention(q, k, v, causal, impl="reference"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_equal_k_and_v_heads_are_gqa_and_repeated_heads(impl: str, kv_heads: int) -> None:
    """n_hk = n_hv < n_hq is GQA (MQA at 1): softmax attention with ``enable_gqa``, and MHA over K and V repeated
    with ``repeat_interleave`` (what HF's ``repeat_kv`` does)."""
    q, k, v = qkv(2, 8, kv_heads, kv_heads, 11, 6, 5)
    out = diffqkv_attention(q, k, v, True, impl=impl)
    close(out, softmax_attention(q, k, v, True, enable_gqa=True, impl="reference"))
    r = 8 // kv_heads
    close(out, softmax_attention(q, k.repeat_interleave(r, 1), v.repeat_interleave(r, 1), True, impl="reference"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("hq", "hk", "hv"), [(8, 2, 4), (8, 4, 1), (6, 3, 2), (4, 1, 4), (32, 4, 16)])
def test_k_and_v_heads_are_shared_independently(impl: str, hq: int, hk: int, hv: int) -> None:
    """Different K and V head counts: K and V each repeated by ``repeat_interleave`` to every query head, then
    MHA. Also with a prefill chunk against a longer cache and a key padding mask."""
    q, k, v = qkv(2, hq, hk, hv, 7, 4, 3, nk=12)
    padding = torch.zeros(2, 12, dtype=torch.bool)
    padding[1, :3] = True
    out = diffqkv_attention(q, k, v, True, impl=impl, key_padding_mask=padding)
    k_rep, v_rep = k.repeat_interleave(hq // hk, 1), v.repeat_interleave(hq // hv, 1)
    close(out, softmax_attention(q, k_rep, v_rep, True, impl="reference", key_padding_mask=padding))


def test_head_index_is_eq3_and_repeat_interleave() -> None:
    for hq, h in [(32, 4), (32, 16), (6, 2), (6, 3), (5, 1), (4, 4)]:
        expected = [i * h // hq for i in range(hq)]
        assert shared_head_index(hq, h).tolist() == expected
        assert torch.arange(h).repeat_interleave(hq // h).tolist() == expected


def sigma_kv_group_sharing(key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma's official ``kv_group_sharing`` (arXiv 2501.13629v2, Appendix E, transcribed; ``self.num_key_heads`` /
    ``self.num_value_heads`` read from the shapes): the workaround for frameworks that need as many K as V heads,
    repeating the smaller of the two, before a GQA flash attention call."""
    batch, num_key_heads, slen, head_dim = key.shape
    num_value_heads = value.shape[1]
    if num_key_heads > num_value_heads:
        n_rep = int(num_key_heads / num_value_heads)
        value = value[:, :, None, :, :].expand(batch, num_value_heads, n_rep, slen, head_dim)
        return key, value.reshape(batch, num_value_heads * n_rep, slen, head_dim)
    n_rep = int(num_value_heads / num_key_heads)
    if n_rep == 1:
        return key, value
    key = key[:, :, None, :, :].expand(batch, num_key_heads, n_rep, slen, head_dim)
    return key.reshape(batch, num_key_heads * n_rep, slen, head_dim), value


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("hk", "hv"), [(4, 16), (16, 4), (2, 2), (1, 8)])
def test_matches_sigmas_own_kv_group_sharing(impl: str, hk: int, hv: int) -> None:
    """The paper's Appendix E code then GQA attention (32 query heads, K and V heads as Sigma-1.5B and mirrored)."""
    q, k, v = qkv(1, 32, hk, hv, 9, 8, 8)
    out = diffqkv_attention(q, k, v, True, impl=impl)
    close(out, softmax_attention(q, *sigma_kv_group_sharing(k, v), True, enable_gqa=True, impl="reference"))


class ShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor any aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.add(tuple(t.shape))
        return out


@pytest.mark.parametrize(("impl", "top_k"), [("sdpa", None), ("grouped", None), ("grouped", 3)])
def test_fast_paths_never_repeat_k_or_v(impl: str, top_k: int | None) -> None:
    """Forward and backward of the fast paths create no tensor of K or V expanded to the query heads (the
    reference does: it is what it checks against); SDPA reads the shared K head as a stride-0 view."""
    q, k, v = qkv(2, 8, 2, 4, 10, 5, 3, nk=11)
    expanded = {(2, 8, 11, 5), (2, 8, 11, 3)}
    for t in (q, k, v):
        t.requires_grad_(True)
    with ShapeRecorder() as grouped:
        diffqkv_attention(q, k, v, True, impl=impl, top_k=top_k).sum().backward()
    with ShapeRecorder() as reference:
        diffqkv_attention(q, k, v, True, impl="reference", top_k=top_k)
    assert not grouped.shapes & expanded
    assert expanded <= reference.shapes


# ---- selective V fetching (Appendix B.2) -----------------------------------------------------------------------

@pytest.mark.parametrize("impl", TOP_K_IMPLS)
@pytest.mark.parametrize("causal", [False, True])
def test_top_k_of_every_key_is_exact(impl: str, causal: bool) -> None:
    q, k, v = qkv(2, 4, 1, 2, 9, 6, 4, nk=15)
    for t in (q, k, v):
        t.requires_grad_(True)
    full = diffqkv_attention(q, k, v, causal, impl=impl)
    every = diffqkv_attention(q, k, v, causal, impl=impl, top_k=15)
    close(every, full)
    grads = torch.autograd.grad((every * full.detach()).sum(), (q, k, v))
    for got, expected in zip(grads, torch.autograd.grad((full * full.detach()).sum(), (q, k, v))):
        close(got, expected)


@pytest.mark.parametrize("impl", TOP_K_IMPLS)
def test_top_k_gradcheck(impl: str) -> None:
    """The contract's gradcheck runs a case every implementation takes (no top_k, which SDPA cannot do)."""
    inputs = tuple(t.requires_grad_(True) for t in qkv(1, 2, 1, 2, 4, 3, 2, nk=5))
    assert torch.autograd.gradcheck(lambda *t: diffqkv_attention(*t, True, impl=impl, top_k=2), inputs)
    if impl == "grouped":  # declared any-order
        assert torch.autograd.gradgradcheck(lambda *t: diffqkv_attention(*t, True, impl=impl, top_k=2), inputs)


@pytest.mark.parametrize("impl", TOP_K_IMPLS)
def test_top_k_sums_the_top_values_with_the_full_softmax_weights(impl: str) -> None:
    """An explicit loop over queries: weights softmax(q·K·scale) over all (causal) keys, the values of the k highest
    scores summed with those weights, not renormalised."""
    q, k, v = qkv(1, 4, 2, 1, 8, 5, 3)
    top_k, scale = 3, 5 ** -0.5
    out, weights = diffqkv_attention(q, k, v, True, impl=impl, top_k=top_k, return_weights=True)
    for h in range(4):
        for t in range(8):
            scores = (k[0, h // 2, : t + 1] @ q[0, h, t]) * scale
            alpha = torch.softmax(scores, 0)
            kept = scores.argsort(descending=True)[:top_k]
            close(out[0, h, t], (alpha[kept, None] * v[0, 0, kept]).sum(0))
            expected = torch.zeros(8, dtype=torch.float64)
            expected[kept] = alpha[kept]
            close(weights[0, h, t], expected)
    sums = weights.sum(-1)
    assert (sums[..., top_k:] < 1 - 1e-6).all() and torch.allclose(sums[..., :top_k], torch.ones((), dtype=torch.float64))
    assert (out - diffqkv_attention(q, k, v, True, impl=impl)).abs().max() > 1e-3  # dropping keys changes it


# ---- the peer: Hugging Face transformers' LlamaAttention (GQA) -------------------------------------------------

def llama_attention(kv_heads: int) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaAttention

    config = transformers.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=kv_heads,
                                      head_dim=8, attention_bias=False, attention_dropout=0.0)
    config._attn_implementation = "eager"  # its eager_attention_forward: repeat_kv, then softmax(QKᵀ/√d + mask) V
    torch.manual_seed(kv_heads)
    return LlamaAttention(config, layer_idx=0).double().eval()


def copy_llama_weights(peer: torch.nn.Module, ours: torch.nn.Module) -> None:
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            getattr(ours, name).weight.copy_(getattr(peer, name).weight)
        ours.o_proj.bias.zero_()  # Llama's o_proj has no bias


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("layer", ["gqa", "diffqkv"])
def test_llama_attention_peer(kv_heads: int, layer: str) -> None:
    """transformers 5.24 ``LlamaAttention`` (``models/llama/modeling_llama.py``), random weights copied into our
    layer, causal additive mask as its model builds one. RoPE: the peer gets ``cos = 1, sin = 0`` (its rotation is
    the identity), since our layers have no positional encoding; what is compared is the projections, the K/V
    head sharing (``repeat_kv``), the scale and the causal softmax."""
    peer = llama_attention(kv_heads)
    if layer == "gqa":
        ours = GroupedQueryAttention(32, 4, kv_heads, qkv_bias=False).double()
    else:
        ours = DiffQKVAttention(32, 4, kv_heads, kv_heads, qkv_bias=False).double()
    copy_llama_weights(peer, ours)
    x = torch.randn(3, 10, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    identity = (torch.ones(3, 10, 8, dtype=torch.float64), torch.zeros(3, 10, 8, dtype=torch.float64))
    future = torch.ones(10, 10, dtype=torch.bool).triu(1)
    mask = torch.zeros(3, 1, 10, 10, dtype=torch.float64).masked_fill(future, torch.finfo(torch.float64).min)
    with torch.no_grad():
        expected, _ = peer(x, position_embeddings=identity, attention_mask=mask)
        # the peer's eager softmax runs in float32 (softmax(..., dtype=torch.float32)), hence 1e-6, not 1e-12
        torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=0)


# ---- the layers -------------------------------------------------------------------------------------------------

def test_gqa_layer_with_every_head_is_the_softmax_layer() -> None:
    """MHA: GroupedQueryAttention(num_kv_heads=num_heads) is SoftmaxAttention with its fused qkv split."""
    torch.manual_seed(0)
    mha, ours = SoftmaxAttention(32, 4).double(), GroupedQueryAttention(32, 4).double()
    with torch.no_grad():
        for proj, weight, bias in zip((ours.q_proj, ours.k_proj, ours.v_proj), mha.qkv.weight.chunk(3),
                                      mha.qkv.bias.chunk(3)):
            proj.weight.copy_(weight)
            proj.bias.copy_(bias)
        ours.o_proj.load_state_dict(mha.proj.state_dict())
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    close(ours(x), mha(x))
    assert ours.num_kv_heads == 4 and GroupedQueryAttention(32, 4, 1).k_proj.out_features == 8  # MQA: one head


def test_k_transform_and_augmented_q_are_applied_as_defined() -> None:
    """Half K dim: keys projected at head_dim_k and mapped to head_dim_v by the K transform before the product;
    AugQ: q <- down(silu(gate q) * up q) (Appendix E). The layer equals the op on hand-built heads."""
    torch.manual_seed(0)
    layer = DiffQKVAttention(48, 8, num_k_heads=2, num_v_heads=4, head_dim_k=3, head_dim_v=6, aug_q_dim=72,
                             top_k=5).double()
    assert layer.k_transform.weight.shape == (6, 3) and layer.k_proj.out_features == 2 * 3
    x = torch.randn(2, 12, 48, dtype=torch.float64)
    q = layer.q_proj(x)
    q = layer.aug_q.down(torch.nn.functional.silu(layer.aug_q.gate(q)) * layer.aug_q.up(q))
    q = q.view(2, 12, 8, 6).transpose(1, 2)
    k = layer.k_transform(layer.k_proj(x).view(2, 12, 2, 3).transpose(1, 2))
    v = layer.v_proj(x).view(2, 12, 4, 6).transpose(1, 2)
    out = diffqkv_attention(q, k, v, True, top_k=5, impl="reference")
    close(layer(x), layer.o_proj(out.transpose(1, 2).reshape(2, 12, 48)))


def test_layer_top_k_is_a_budget() -> None:
    """A layer's top_k at or above the sequence length uses every key: the same as no top_k."""
    torch.manual_seed(0)
    layer = DiffQKVAttention(32, 4, 1, 2, top_k=10).double()
    exact = DiffQKVAttention(32, 4, 1, 2).double()
    exact.load_state_dict(layer.state_dict())
    x = torch.randn(2, 10, 32, dtype=torch.float64)
    close(layer(x), exact(x))
    assert (layer(torch.randn(2, 16, 32, dtype=torch.float64)) - exact(torch.randn(2, 16, 32, dtype=torch.float64))).abs().max() > 0


def test_layers_take_key_padding_like_the_unpadded_sequence() -> None:
    torch.manual_seed(0)
    for layer in (DiffQKVAttention(32, 4, 1, 2, head_dim_k=4, top_k=3).double(),
                  GroupedQueryAttention(32, 4, 2).double()):
        x = torch.randn(2, 9, 32, dtype=torch.float64)
        padding = torch.zeros(2, 9, dtype=torch.bool)
        padding[1, 6:] = True
        out = layer(x, key_padding_mask=padding)
        close(out[1:, :6], layer(x[1:, :6]))
        close(out[:1], layer(x[:1]))


# ---- decoding with a cache (attnzoo.layers.cache protocol) -----------------------------------------------------

DECODERS = {
    "diffqkv_sigma_like": lambda: DiffQKVAttention(48, 8, num_k_heads=2, num_v_heads=4, head_dim_k=3, head_dim_v=6,
                                                   aug_q_dim=72, top_k=4),
    "diffqkv_more_k_heads": lambda: DiffQKVAttention(32, 4, num_k_heads=4, num_v_heads=1, impl="grouped"),
    "diffqkv_reference": lambda: DiffQKVAttention(32, 4, 1, 2, head_dim_k=4, impl="reference"),
    "gqa": lambda: GroupedQueryAttention(32, 4, 2),
    "mqa": lambda: GroupedQueryAttention(32, 4, 1),
}


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoding_token_by_token_and_in_chunks_equals_the_full_forward(name: str) -> None:
    """float64: one token at a time, and chunks of 4, 1, 1, 5 tokens, give the full causal forward's rows (top-k
    included: a step sees the same keys as its row of the full forward); the cache holds (Hk Dk + Hv Dv) values
    per token, keys before the K transform."""
    torch.manual_seed(0)
    layer = DECODERS[name]().double()
    x = torch.randn(2, 11, layer.dim, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x)
        cache = layer.new_cache(2)
        steps = torch.cat([layer(x[:, t:t + 1], cache=cache) for t in range(11)], dim=1)
        chunked_cache = layer.new_cache(2)
        pieces, start = [], 0
        for size in (4, 1, 1, 5):
            pieces.append(layer(x[:, start:start + size], cache=chunked_cache))
            start += size
    close(steps, full)
    close(torch.cat(pieces, dim=1), full)
    assert cache.length == 11 and cache.keys.shape == (2, layer.num_k_heads, 11, layer.head_dim_k)
    assert cache.values.shape == (2, layer.num_v_heads, 11, layer.head_dim_v)
    assert cache.bytes_per_token == layer.kv_cache_bytes_per_token(torch.float64)
    assert cache.nbytes == cache.nbytes_at(11) == 2 * 11 * layer.kv_cache_bytes_per_token(torch.float64)


def test_cache_misuse_is_refused() -> None:
    layer = DiffQKVAttention(32, 4, 1, 2)
    with pytest.raises(TypeError, match=r"cache=KVCache: DiffQKVAttention decodes with a DiffQKVCache"):
        layer(torch.randn(1, 2, 32), cache=SoftmaxAttention(32, 4).new_cache(1))
    with pytest.raises(ValueError, match=r"key_padding_mask with a cache"):
        layer(torch.randn(1, 2, 32), key_padding_mask=torch.zeros(1, 2, dtype=torch.bool), cache=layer.new_cache(1))
    with pytest.raises(ValueError, match=r"is_causal=False cannot decode"):
        DiffQKVAttention(32, 4, 1, 2, is_causal=False).new_cache(1)
    with pytest.raises(ValueError, match=r"cache was made for another layer"):
        GroupedQueryAttention(32, 4, 2)(torch.randn(1, 2, 32), cache=GroupedQueryAttention(32, 4, 2).new_cache(1))


# ---- KV-cache cost (Section 3.1, Eq. 1 and 2) ------------------------------------------------------------------

def paper_cost(b: int, s: int, n_hk: int, d_hk: int, n_hv: int, d_hv: int, alpha: float, beta: float) -> float:
    """Eq. 1: L = α · [b · s · (n_hk · d_hk + n_hv · d_hv)] + β."""
    return alpha * (b * s * (n_hk * d_hk + n_hv * d_hv)) + beta


CONFIGS = {  # (n_hk, d_hk, n_hv, d_hv) with 32 query heads of 64 (the ablations of Section 2, Sigma-1.5B)
    "mha": (32, 64, 32, 64), "gqa16": (16, 64, 16, 64), "gqa4": (4, 64, 4, 64), "mqa": (1, 64, 1, 64),
    "sigma_1.5b": (4, 64, 16, 64), "gqa16_half_k_dim": (16, 32, 16, 64),
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_kv_cache_bytes_follow_the_papers_cost_model(dtype: torch.dtype) -> None:
    itemsize = torch.empty((), dtype=dtype).element_size()
    bytes_per_token = {name: kv_cache_bytes_per_token(*c, dtype) for name, c in CONFIGS.items()}
    for name, config in CONFIGS.items():
        for b, s in [(1, 1), (4, 1000)]:
            assert b * s * bytes_per_token[name] == paper_cost(b, s, *config, alpha=itemsize, beta=0)
    assert bytes_per_token["mha"] == 2 * 32 * 64 * itemsize and bytes_per_token["mqa"] == 2 * 64 * itemsize
    # Eq. 2: Sigma-1.5B against GQA(16): (32 - 20) / 32 = 37.5% as s -> infinity, whatever β
    reduction = 1 - bytes_per_token["sigma_1.5b"] / bytes_per_token["gqa16"]
    assert reduction == 0.375
    gqa, sigma = (paper_cost(1, 10**9, *CONFIGS[n], alpha=itemsize, beta=1e6) for n in ("gqa16", "sigma_1.5b"))
    assert abs((gqa - sigma) / gqa - 0.375) < 1e-6
    assert kv_cache_bytes_per_token(*CONFIGS["sigma_1.5b"], dtype, num_layers=26) == 26 * 1280 * itemsize


def test_layers_report_their_kv_cache_bytes() -> None:
    """Keys are cached before the K transform, so a halved K dim halves the key bytes."""
    layer = DiffQKVAttention(64, 8, num_k_heads=2, num_v_heads=4, head_dim_k=4)
    assert layer.kv_cache_bytes_per_token() == (2 * 4 + 4 * 8) * 4
    assert layer.kv_cache_bytes_per_token(torch.bfloat16) == (2 * 4 + 4 * 8) * 2
    assert GroupedQueryAttention(64, 8, 2).kv_cache_bytes_per_token() == 2 * 2 * 8 * 4
    assert GroupedQueryAttention(64, 8).kv_cache_bytes_per_token() == 2 * 64 * 4  # MHA: 2 · dim values


# ---- bad input (the op's and layer's own: the spec's error inputs cover the rest) -------------------------------

def test_cost_model_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"num_k_heads=0: expected an int >= 1"):
        kv_cache_bytes_per_token(0, 64, 16, 64)
    with pytest.raises(ArgumentTypeError, match=r"head_dim_v=64.0: expected an int"):
        kv_cache_bytes_per_token(4, 64, 16, 64.0)
    with pytest.raises(TypeError, match=r"dtype='bf16': expected a torch.dtype"):
        kv_cache_bytes_per_token(4, 64, 16, 64, "bf16")


def test_bad_head_counts_and_dims_name_the_argument() -> None:
    q, k, v = qkv(1, 6, 4, 3, 5, 4, 4)
    with pytest.raises(ValueError, match=r"key has 4 heads and the query 6; expected a divisor of the query's 6"):
        diffqkv_attention(q, k, v)
    with pytest.raises(ValueError, match=r"num_kv_heads=3: expected a divisor of num_heads=4"):
        GroupedQueryAttention(32, 4, 3)
    with pytest.raises(ValueError, match=r"head_dim_k=9: expected at most head_dim_v=8"):
        attnzoo.create("diffqkv", head_dim_k=9)
    with pytest.raises(ValueError, match=r"top_k=6: expected at most the number of keys Nk=5"):
        diffqkv_attention(q, k[:, :3], v[:, :3], top_k=6)
