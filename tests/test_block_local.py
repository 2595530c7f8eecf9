"""Block-local attention (Block Transformer, arXiv 2406.02657): the limits that reduce to known attention, the
pattern against an explicit loop, the blocks' independence, decoding against the current block's keys only, and
the layer's cache (BlockLocalKVCache). The reference-vs-fast-path comparisons are the registry-wide contract's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import BlockLocalAttention
from attnzoo.layers.cache import BlockLocalKVCache
from attnzoo.ops.block_local import BlockLocalPattern, block_local_attention
from attnzoo.registry import CallFacts, NotSupportedError

IMPLS = ("blocked", "reference")


def _qkv(length: int, kv_length: int | None = None, heads: int = 2, dim: int = 8, seed: int = 0
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    nk = length if kv_length is None else kv_length
    return (torch.randn(2, heads, length, dim, generator=g, dtype=torch.float64),
            torch.randn(2, heads, nk, dim, generator=g, dtype=torch.float64),
            torch.randn(2, heads, nk, dim, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("length", "block"), [(1, 1), (17, 17), (17, 40), (64, 64)])
def test_one_block_without_prefix_is_causal_attention(impl: str, length: int, block: int) -> None:
    q, k, v = _qkv(length)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(block_local_attention(q, k, v, block, impl=impl), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("prefix", [0, 1])
def test_blocks_of_one_token_return_the_values(impl: str, prefix: int) -> None:
    q, k, v = _qkv(23)
    torch.testing.assert_close(block_local_attention(q, k, v, 1, prefix, impl=impl), v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_whole_prefix_over_one_block_is_full_attention(impl: str) -> None:
    q, k, v = _qkv(30)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(block_local_attention(q, k, v, 30, 30, impl=impl), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_prefix_of_one_position_changes_nothing(impl: str) -> None:
    q, k, v = _qkv(29)
    torch.testing.assert_close(block_local_attention(q, k, v, 6, 1, impl=impl),
                               block_local_attention(q, k, v, 6, 0, impl=impl), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("prefix", [0, 2, 5])
def test_each_block_is_attention_on_that_block_alone(impl: str, prefix: int) -> None:
    """Blocks of 5 over 23 positions (the last one of 3): block ``b`` is dense attention on its own positions with
    the causal mask opened on the first ``prefix`` keys (a partial block: on the prefix positions it has)."""
    q, k, v = _qkv(23)
    out = block_local_attention(q, k, v, 5, prefix, impl=impl)
    for start in range(0, 23, 5):
        stop = min(start + 5, 23)
        size = stop - start
        i = torch.arange(size)
        mask = (i[None, :] <= i[:, None]) | (i[None, :] < prefix)
        expected = F.scaled_dot_product_attention(q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop],
                                                  attn_mask=mask)
        torch.testing.assert_close(out[:, :, start:stop], expected, rtol=0, atol=1e-12)


def test_the_mask_function_equals_an_explicit_loop() -> None:
    for length, block, prefix in [(1, 1, 0), (23, 5, 0), (23, 5, 2), (12, 4, 4), (9, 20, 3)]:
        mask = BlockLocalPattern(length, block, prefix).mask_mod()
        i = torch.arange(length)
        found = mask(torch.tensor(0), torch.tensor(0), i[:, None], i[None, :])
        expected = torch.zeros(length, length, dtype=torch.bool)
        for query in range(length):
            for key in range(length):
                same = query // block == key // block
                expected[query, key] = same and (key <= query or key % block < prefix)
        assert torch.equal(found, expected), (length, block, prefix)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("queries", "prefix"), [(1, 0), (3, 0), (9, 0), (2, 3)])
def test_decoding_against_the_current_block_alone_equals_the_full_call(impl: str, queries: int, prefix: int) -> None:
    """The last queries of a 26-position sequence (blocks of 6) see the same keys whether the call gets every key
    or only those from the first query's block on: what :class:`BlockLocalKVCache` keeps."""
    q, k, v = _qkv(26)
    full = block_local_attention(q, k, v, 6, prefix, impl=impl)[:, :, -queries:]
    start = (26 - queries) // 6 * 6
    kept = block_local_attention(q[:, :, -queries:], k[:, :, start:], v[:, :, start:], 6, prefix, impl=impl)
    torch.testing.assert_close(kept, full, rtol=0, atol=1e-12)


def test_grouped_key_value_heads_equal_repeated_heads() -> None:
    q, _, _ = _qkv(19, heads=4)
    _, k, v = _qkv(19, heads=2, seed=1)
    repeated = block_local_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), 4, impl="reference")
    torch.testing.assert_close(block_local_attention(q, k, v, 4, enable_gqa=True, impl="blocked"), repeated,
                               rtol=0, atol=1e-12)


def test_auto_picks_the_blocked_path_and_the_reference_for_its_masks() -> None:
    q, k, v = _qkv(10)
    assert "blocked: CHOSEN" in attnzoo.explain("block_local_attention", CallFacts.of([q, k, v]))
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[:, -1] = True
    with pytest.raises(NotSupportedError, match="key_padding_mask"):
        block_local_attention(q, k, v, 4, key_padding_mask=padding, impl="blocked")
    out = block_local_attention(q, k, v, 4, key_padding_mask=padding)  # auto: the reference runs it
    torch.testing.assert_close(out[:, :, :8], block_local_attention(q, k, v, 4)[:, :, :8], rtol=0, atol=1e-12)


def test_the_blocked_path_never_builds_the_dense_matrix() -> None:
    """At 16k tokens a float64 N x N score matrix per head is 2 GiB; the blocked path's autograd graph holds only
    per-block tensors (checked: the largest saved tensor is a small multiple of the inputs)."""
    q, k, v = (torch.randn(1, 1, 16384, 8, requires_grad=True) for _ in range(3))
    largest = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block_local_attention(q, k, v, 64, impl="blocked").sum().backward()
    assert largest <= 4 * q.numel()


# ---- the layer and its cache ---------------------------------------------------------------------------------

def _layer(**options: object) -> BlockLocalAttention:
    torch.manual_seed(0)
    return BlockLocalAttention(16, 2, **options).double().eval()


@pytest.mark.parametrize(("block", "prefix", "sizes"), [(4, 0, [1] * 15), (4, 0, [3, 5, 1, 6]), (5, 2, [2, 5, 3, 5]),
                                                        (5, 3, [3, 2, 5, 5]), (1, 0, [4, 4, 7])])
def test_the_layer_decodes_in_pieces_as_its_full_forward(block: int, prefix: int, sizes: list[int]) -> None:
    layer = _layer(block_size=block, num_prefix_tokens=prefix, is_causal=prefix <= 1)
    x = torch.randn(2, sum(sizes), 16, dtype=torch.float64)
    cache = layer.new_cache(2)
    pieces, seen = [], 0
    with torch.no_grad():
        for size in sizes:
            pieces.append(layer(x[:, seen:seen + size], cache=cache))
            seen += size
            assert cache.keys.shape[2] == seen % block <= cache.capacity == block - 1
            assert cache.nbytes == cache.nbytes_at(seen)
        torch.testing.assert_close(torch.cat(pieces, dim=1), layer(x), rtol=0, atol=1e-12)


def test_the_cache_refuses_a_call_that_ends_inside_a_bidirectional_prefix() -> None:
    layer = _layer(block_size=5, num_prefix_tokens=3, is_causal=False)
    cache = layer.new_cache(1)
    x = torch.randn(1, 7, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="end inside a block's num_prefix_tokens=3 bidirectional prefix"):
        layer(x[:, :2], cache=cache)
    layer(x[:, :3], cache=cache)
    with pytest.raises(ValueError, match=r"position 1 of block_size=5"):
        layer(x[:, 3:6], cache=cache)
    assert cache.length == 3 and isinstance(cache, BlockLocalKVCache)


def test_a_causal_layer_refuses_a_bidirectional_prefix() -> None:
    with pytest.raises(ValueError, match="num_prefix_tokens=2: expected at most 1 with is_causal=True"):
        BlockLocalAttention(16, 2, block_size=4, num_prefix_tokens=2)
    assert BlockLocalAttention(16, 2, block_size=4, num_prefix_tokens=1).is_causal
