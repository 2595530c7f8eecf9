"""Routing attention's own invariants (Roy et al., arXiv 2003.05997); the registry-wide contract (reference vs
fast path forward and backward on awkward shapes, gradcheck, causality, bad input) runs from
``attnzoo/ops/routing/testing.py``.

- limits: one cluster with ``window = N`` is dense (causal) attention, the self position masked with shared queries
  and keys (equal to lucidrains' ``-5e4`` self logit);
- the selection: exactly ``window`` members per cluster, ascending, ties to the earlier position; tokens in no
  cluster output zero; multi-membership averages (the definition written out as loops);
- gradients flow through the attention, never through the assignments or into the centroids; balanced routing is
  causal in gradient but not in value (later tokens can change the selection);
- the commitment loss and the EMA spherical k-means update (train vs eval, decay 0, 1 and 0.999), the centroids
  buffer through ``state_dict``, the layer's local + routing heads, ``fit_window``;
- the official TensorFlow code (``routing_transformer/utils.py``) transcribed for separately routed, non-causal
  heads;
- the peer: lucidrains' ``routing-transformer`` 1.6.1 ``KmeansAttention`` with copied centroids, where its
  definition coincides, and where it does not.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import RoutingAttention
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.ops import routing_attention, sliding_window_attention
from attnzoo.ops.routing.kmeans import ema_update_, kmeans_centroids
from attnzoo.ops.routing.reference import routing_reference
from attnzoo.ops.routing.routing import balanced_members, route

IMPLS = ("gathered", "reference")
SELF_LOGIT = -5e4  # lucidrains' TOKEN_SELF_ATTN_VALUE


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(_randn(*shape, seed=seed), dim=-1)


def _dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor,
           self_logit: float | None = None) -> torch.Tensor:
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    if self_logit is not None:
        scores = scores.masked_fill(torch.eye(q.shape[2], dtype=torch.bool), self_logit)
    return scores.masked_fill(~visible, float("-inf")).softmax(-1) @ v


# --- limits ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_one_cluster_of_all_tokens_is_dense_attention(impl: str) -> None:
    q, k, v = _randn(2, 3, 17, 8, seed=1), _randn(2, 3, 17, 8, seed=2), _randn(2, 3, 17, 5, seed=3)
    centroids = _unit(3, 1, 8)
    causal = torch.ones(17, 17, dtype=torch.bool).tril()
    out = routing_attention(q, k, v, centroids, 17, is_causal=True, impl=impl)
    torch.testing.assert_close(out, _dense(q, k, v, causal))
    out = routing_attention(q, k, v, centroids, 17, is_causal=False, impl=impl)
    torch.testing.assert_close(out, _dense(q, k, v, torch.ones(17, 17, dtype=torch.bool)))
    # shared: the self position is masked unless nothing else is visible (position 0 attends to itself)
    shared = routing_attention(q, q, v, centroids, 17, is_causal=True, impl=impl, shared_qk=True)
    strict = torch.ones(17, 17, dtype=torch.bool).tril(-1)
    strict[0, 0] = True
    torch.testing.assert_close(shared, _dense(q, q, v, strict))
    torch.testing.assert_close(shared, _dense(q, q, v, causal, self_logit=SELF_LOGIT))  # lucidrains' rule
    bidirectional = routing_attention(q, q, v, centroids, 17, is_causal=False, impl=impl, shared_qk=True)
    torch.testing.assert_close(bidirectional, _dense(q, q, v, ~torch.eye(17, dtype=torch.bool)))


def test_with_every_token_in_every_cluster_the_centroids_do_not_matter() -> None:
    q, v = _randn(1, 2, 12, 4, seed=1), _randn(1, 2, 12, 4, seed=2)
    outs = [routing_attention(q, q, v, _unit(2, 3, 4, seed=s), 12, is_causal=True, shared_qk=True) for s in (5, 6)]
    torch.testing.assert_close(outs[0], outs[1])


# --- the selection --------------------------------------------------------------------------------------------------

def test_balanced_members_break_ties_by_position() -> None:
    scores = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.0]).expand(1, 1, 1, 6)
    assert balanced_members(scores, 1).flatten().tolist() == [1]
    assert balanced_members(scores, 2).flatten().tolist() == [1, 2]
    assert balanced_members(scores, 3).flatten().tolist() == [1, 2, 4]
    assert balanced_members(scores, 4).flatten().tolist() == [1, 2, 3, 4]
    # rows full of ties: the first `window` of (score descending, position ascending), returned ascending
    values = torch.randint(0, 4, (2, 3, 5, 50), generator=torch.Generator().manual_seed(0)).double()
    for window in (1, 7, 25, 49, 50):
        members = balanced_members(values, window)
        assert members.shape == (2, 3, 5, window)
        for row, chosen in zip(values.reshape(-1, 50).tolist(), members.reshape(-1, window).tolist()):
            assert chosen == sorted(sorted(range(50), key=lambda j: (-row[j], j))[:window])


@pytest.mark.parametrize("impl", IMPLS)
def test_an_exact_tie_goes_to_the_earlier_token_and_unrouted_tokens_output_zero(impl: str) -> None:
    a, b, c = _randn(3, 4, seed=7)
    q = torch.stack([a, a, b, c])[None, None]  # tokens 0 and 1 are equal
    centroid = F.normalize(a, dim=0).view(1, 1, 4)
    v = _randn(1, 1, 4, 3, seed=8)
    out = routing_attention(q, q, v, centroid, 1, is_causal=True, shared_qk=True, impl=impl)
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0])  # token 0 wins the tie, alone in its cluster
    assert (out[0, 0, 1:] == 0).all()  # the others are in no cluster


def _loop_definition(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, centroids: torch.Tensor, window: int,
                     causal: bool, shared: bool) -> torch.Tensor:
    """The module docstring's equations written out per (batch, head, cluster, member)."""
    routing = route(q, k, centroids, window, shared)
    b, h, n, _ = q.shape
    total, count = torch.zeros(b, h, n, v.shape[-1], dtype=v.dtype), torch.zeros(b, h, n)
    for bi in range(b):
        for hi in range(h):
            for c in range(centroids.shape[1]):
                members = routing.query_members[bi, hi, c].tolist()
                keys = routing.key_members[bi, hi, c].tolist()
                for i in members:
                    seen = [j for j in keys if (j <= i or not causal) and not (shared and j == i)]
                    if shared and not seen:
                        seen = [i]
                    if not seen:
                        continue
                    logits = torch.stack([q[bi, hi, i] @ k[bi, hi, j] for j in seen]) * q.shape[-1] ** -0.5
                    total[bi, hi, i] += logits.softmax(0) @ v[bi, hi, seen]
                    count[bi, hi, i] += 1
    return total / count.clamp(min=1)[..., None]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("causal", "shared"), [(True, True), (True, False), (False, True), (False, False)])
def test_tokens_in_several_clusters_get_the_mean_of_their_results(impl: str, causal: bool, shared: bool) -> None:
    q, k, v = _randn(2, 2, 12, 4, seed=1), _randn(2, 2, 12, 4, seed=2), _randn(2, 2, 12, 3, seed=3)
    centroids = _unit(2, 3, 4, seed=4)  # 3 clusters of 6: 18 places for 12 tokens
    k = q if shared else k
    routing = route(q, k, centroids, 6, shared)
    membership = torch.zeros(2, 2, 12).scatter_add_(-1, routing.query_members.flatten(2),
                                                    torch.ones(2, 2, 18))
    assert (membership >= 2).any() and (membership == 0).any()
    out = routing_attention(q, k, v, centroids, 6, causal, impl=impl, shared_qk=shared)
    torch.testing.assert_close(out, _loop_definition(q, k, v, centroids, 6, causal, shared))


# --- gradients ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_flow_through_the_attention_not_through_the_assignments(impl: str) -> None:
    q, k, v = (_randn(1, 2, 20, 4, seed=s).requires_grad_() for s in (1, 2, 3))
    centroids = _unit(2, 3, 4, seed=4).requires_grad_()
    out, loss = routing_attention(q, k, v, centroids, 6, True, impl=impl, return_loss=True)
    grads = torch.autograd.grad((out * _randn(*out.shape, seed=5)).sum() + loss, (q, k, v, centroids),
                                allow_unused=True)
    assert grads[3] is None  # nothing reaches the centroids
    # the same gradients as attention over the routing held fixed
    fixed = route(q.detach(), k.detach(), centroids.detach(), 6, False)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    expected = routing_reference(*leaves, fixed, is_causal=True, scale=0.5)
    expected_loss = routing_attention(leaves[0], leaves[1], leaves[2].detach(), centroids.detach(), 6, True,
                                      return_loss=True)[1]
    want = torch.autograd.grad((expected * _randn(*out.shape, seed=5)).sum() + expected_loss, leaves)
    for got, wanted in zip(grads[:3], want):
        torch.testing.assert_close(got, wanted)


def test_balanced_routing_is_causal_in_gradient_but_not_in_value() -> None:
    """No gradient reaches a later token, but a later token that scores high for a cluster takes the place of an
    earlier member, whose output changes: the top-w selection reads the whole sequence (as the official code's
    training forward does)."""
    q, v = _randn(1, 1, 8, 4, seed=1).requires_grad_(), _randn(1, 1, 8, 4, seed=2)
    centroid = _unit(1, 1, 4, seed=3)
    out = routing_attention(q, q, v, centroid, 4, is_causal=True, shared_qk=True)
    (grad,) = torch.autograd.grad(out[:, :, :6].sum(), q)
    assert (grad[:, :, 6:] == 0).all()
    changed = q.detach().clone()
    changed[0, 0, 7] = 10 * centroid[0, 0]  # the last token becomes the cluster's best
    after = routing_attention(changed, changed, v, centroid, 4, is_causal=True, shared_qk=True)
    assert not torch.allclose(after[:, :, :7], out[:, :, :7].detach())
    assert attnzoo.get_variant("routing_attention").causal_selection is False  # declared, so compare's picks skip it


def test_compare_picks_leave_out_causal_rows_that_read_the_future() -> None:
    from attnzoo.compare.report import pick_lines

    rows = [{"task": "austen", "family": "sparse", "mixer": name, "val_bits_per_byte": bpb}
            for name, bpb in (("routing_attention", 2.0), ("combiner_fixed_attention", 2.1), ("softmax", 2.5))]
    line = pick_lines(rows, None, ["sparse"])
    assert "`combiner_fixed_attention` (2.10 bits/byte" in line and "read later tokens" in line


# --- commitment loss and centroids ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False])
def test_commitment_loss_is_the_distance_to_the_nearest_centroid(shared: bool) -> None:
    q, k, v = _randn(2, 2, 9, 4, seed=1), _randn(2, 2, 9, 4, seed=2), _randn(2, 2, 9, 4, seed=3)
    centroids = _unit(2, 5, 4, seed=4)
    k = q if shared else k
    _, loss = routing_attention(q, k, v, centroids, 3, True, shared_qk=shared, return_loss=True)
    expected = 0.0
    for x in (q,) if shared else (q, k):
        x_unit = F.normalize(x, dim=-1)
        nearest = torch.einsum("bhnd,hkd->bhnk", x_unit, centroids).argmax(-1)
        for bi in range(2):
            for hi in range(2):
                expected += (x_unit[bi, hi] - centroids[hi, nearest[bi, hi]]).square().sum() / x.numel()
    torch.testing.assert_close(loss, torch.as_tensor(expected, dtype=torch.float64))


def test_kmeans_step_is_the_normalised_mean_of_each_clusters_vectors() -> None:
    units = [_unit(2, 2, 10, 3, seed=1), _unit(2, 2, 10, 3, seed=2)]
    nearest = [torch.randint(0, 3, (2, 2, 10), generator=torch.Generator().manual_seed(s)) for s in (3, 4)]
    nearest[0][:, 1], nearest[1][:, 1] = 0, 1  # head 1: cluster 2 is nobody's
    centroids = _unit(2, 3, 3, seed=5)
    step = kmeans_centroids(units, nearest, centroids)
    for hi in range(2):
        for c in range(3):
            members = torch.cat([x[:, hi][a[:, hi] == c] for x, a in zip(units, nearest)])
            expected = F.normalize(members.sum(0), dim=0) if len(members) else centroids[hi, c]
            torch.testing.assert_close(step[hi, c], expected)
    ema = ema_update_(centroids.clone(), units, nearest, 0.999)
    torch.testing.assert_close(ema, 0.999 * centroids + 0.001 * step)


def _layer(**kwargs: object) -> RoutingAttention:
    torch.manual_seed(0)
    return RoutingAttention(16, **{"num_heads": 4, "seq_len": 24, **kwargs}).double()


@pytest.mark.parametrize("shared", [True, False])
def test_centroids_follow_their_ema_in_training_mode_only(shared: bool) -> None:
    layer, x = _layer(shared_qk=shared), _randn(3, 24, 16, seed=1)
    before = layer.centroids.clone()
    evaluated = layer.eval()(x)
    assert torch.equal(layer.centroids, before)
    parts = split_heads(layer.routing_qkv(x), (2 if shared else 3) * layer.num_routing_heads)
    parts = parts.chunk(2 if shared else 3, dim=1)
    query = F.layer_norm(parts[0], (4,), eps=1e-6)
    key = query if shared else F.layer_norm(parts[1], (4,), eps=1e-6)
    routing = route(query, key, before, layer.window, shared)
    nearest = routing.nearest()
    units = [routing.query_unit] if shared else [routing.query_unit, routing.key_unit]
    step = kmeans_centroids(units, list(nearest[:len(units)]), before)
    trained = layer.train()(x)
    torch.testing.assert_close(trained, evaluated)  # routed with the old centroids, then updated
    torch.testing.assert_close(layer.centroids, 0.999 * before + 0.001 * step)
    with torch.no_grad():  # still training mode: updated, as BatchNorm's statistics are
        layer(x)
    assert not torch.allclose(layer.centroids, 0.999 * before + 0.001 * step)


def test_decay_zero_is_a_kmeans_step_and_decay_one_freezes() -> None:
    x = _randn(2, 24, 16, seed=1)
    frozen = _layer(decay=1.0).train()
    before = frozen.centroids.clone()
    frozen(x)
    assert torch.equal(frozen.centroids, before)
    layer = _layer(decay=0.0).train()
    query = F.layer_norm(split_heads(layer.routing_qkv(x), 2 * layer.num_routing_heads).chunk(2, dim=1)[0], (4,),
                         eps=1e-6)
    routing = route(query, query, layer.centroids, layer.window, True)
    expected = kmeans_centroids([routing.query_unit], [routing.nearest()[0]], layer.centroids.clone())
    layer(x)
    torch.testing.assert_close(layer.centroids, expected)


def test_centroids_are_saved_and_loaded_with_the_state_dict() -> None:
    layer, x = _layer().train(), _randn(2, 24, 16, seed=1)
    for _ in range(3):
        layer(x)
    state = layer.state_dict()
    assert "centroids" in state and state["centroids"].shape == (2, layer.num_clusters, 4)
    fresh = RoutingAttention(16, num_heads=4, seq_len=24).double()
    assert not torch.equal(fresh.centroids, layer.centroids)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.centroids, layer.centroids)
    torch.testing.assert_close(fresh.eval()(x), layer.eval()(x))


def test_aux_loss_is_the_scaled_commitment_loss_and_trains_the_projections() -> None:
    layer, x = _layer(commitment=0.5).eval(), _randn(2, 24, 16, seed=1)
    layer(x)
    query = F.layer_norm(split_heads(layer.routing_qkv(x), 2 * layer.num_routing_heads).chunk(2, dim=1)[0], (4,),
                         eps=1e-6)
    value = split_heads(layer.routing_qkv(x), 2 * layer.num_routing_heads).chunk(2, dim=1)[1]
    _, loss = routing_attention(query, query, value, layer.centroids, layer.window, True, shared_qk=True,
                                return_loss=True)
    torch.testing.assert_close(layer.aux_loss, 0.5 * loss)
    layer.aux_loss.backward()
    assert layer.routing_qkv.weight.grad.abs().sum() > 0
    layer.train().zero_grad()
    out = layer(x)  # the centroids' in-place update leaves the loss differentiable
    (out.square().mean() + layer.aux_loss).backward()
    assert layer.routing_qkv.weight.grad.abs().sum() > 0


# --- the layer ------------------------------------------------------------------------------------------------------

def test_layer_is_local_heads_beside_routing_heads() -> None:
    layer, x = _layer(num_heads=4, num_local_heads=3, local_window=5).eval(), _randn(2, 24, 16, seed=1)
    assert (layer.num_clusters, layer.window) == (5, 5)  # round(sqrt(24)) clusters of ceil(24 / 5)
    lq, lk, lv = split_heads(layer.local_qkv(x), 9).chunk(3, dim=1)
    local = sliding_window_attention(lq, lk, lv, 5, True)
    q, v = split_heads(layer.routing_qkv(x), 2).chunk(2, dim=1)
    q = (q - q.mean(-1, keepdim=True)) / (q.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    routed = routing_attention(q, q, v, layer.centroids, 5, True, shared_qk=True)
    torch.testing.assert_close(layer(x), layer.proj(merge_heads(torch.cat([local, routed], dim=1))))


def test_fit_window_is_inference_only() -> None:
    layer, short = _layer(window=8), _randn(2, 5, 16, seed=1)
    with pytest.raises(ValueError, match=r"window=8: expected at most the input's N=5 tokens .* fit_window=True"):
        layer(short)
    layer.fit_window = True
    with pytest.raises(ValueError, match=r"fit_window=True: expected eval mode"):
        layer.train()(short)
    layer.eval()
    out = layer(short)  # every token in every cluster: each routing head is dense causal attention
    dense = _layer(window=8, num_clusters=1).eval()
    dense.load_state_dict({**layer.state_dict(), "centroids": dense.centroids}, strict=True)
    dense.fit_window = True
    torch.testing.assert_close(out, dense(short))
    with pytest.raises(ValueError, match=r"fit_window=True: expected eval mode"):
        attnzoo.create("routing_attention", fit_window=True)(torch.randn(2, 16, 32))


def test_sizes_follow_the_paper_rule_and_the_alias_builds() -> None:
    assert (RoutingAttention(64, seq_len=4096).num_clusters, RoutingAttention(64, seq_len=4096).window) == (64, 64)
    layer = RoutingAttention(64, seq_len=16384, num_clusters=128)
    assert layer.window == 128 and layer.local_window == 128 and layer.num_local_heads == 2
    assert RoutingAttention(64, seq_len=1000, window=100).num_clusters == 10
    assert isinstance(attnzoo.create("routing"), RoutingAttention)


# --- the official code, transcribed ---------------------------------------------------------------------------------

def _official_layer_norm(x: torch.Tensor) -> torch.Tensor:
    """``utils.layer_norm(x, scaling=False)``: ``(x - mean) * rsqrt(variance + 1e-6)``."""
    mean = x.mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt((x - mean).square().mean(-1, keepdim=True) + 1e-6)


def _official_clustered_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, means: torch.Tensor,
                                  window: int) -> torch.Tensor:
    """``clustered_local_attention_helper`` for ``masked=False, share_qk=False, hash_items=False``, no relative
    attention, no padding: layer norm, ``nearest_neighbor`` distances ``-x·μ``, ``gather_cluster_attention_items``
    (``top_k(-dist)``, positions sorted), ``dot_product_attention`` (no scale: ``q`` was scaled before the layer
    norm), ``scatter_cluster_items`` (sum over clusters / (count + 1e-2))."""
    q, k = _official_layer_norm(q), _official_layer_norm(k)

    def gather(x: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = -torch.einsum("bnsh,nkh->bnsk", items, means)
        idx = torch.topk(-dist.transpose(-1, -2), window).indices.sort(-1).values  # [b, n, k, w]
        return torch.stack([torch.stack([x[b, h][idx[b, h]] for h in range(x.shape[1])]) for b in range(x.shape[0])]
                           ), idx

    q_g, q_idx = gather(q, q)
    k_g, _ = gather(k, k)
    v_g, _ = gather(v, k)
    out = torch.softmax(q_g @ k_g.transpose(-1, -2), -1) @ v_g
    b, h, n = q.shape[:3]
    summed, ones = torch.zeros(b, h, n, v.shape[-1], dtype=v.dtype), torch.zeros(b, h, n, v.shape[-1], dtype=v.dtype)
    for bi in range(b):
        for hi in range(h):
            summed[bi, hi].index_add_(0, q_idx[bi, hi].flatten(), out[bi, hi].flatten(0, 1))
            ones[bi, hi].index_add_(0, q_idx[bi, hi].flatten(), torch.ones_like(out[bi, hi].flatten(0, 1)))
    return summed / (ones + 1e-2)


@pytest.mark.parametrize("impl", IMPLS)
def test_official_routed_non_causal_attention_transcribed(impl: str) -> None:
    """Separately routed, bidirectional heads (the official encoder setting) with layer-normalised queries and
    keys, ``scale=1`` and the official means (a normal draw, layer-normalised): equal to the transcription up to
    its scatter's ``+ 1e-2``. (Its causal heads mask by slot order, which differs from the positions when queries
    and keys are routed apart, and with shared queries and keys it does not mask the self position.)"""
    q, k, v = _randn(2, 2, 30, 8, seed=1), _randn(2, 2, 30, 8, seed=2), _randn(2, 2, 30, 8, seed=3)
    means = _official_layer_norm(_randn(2, 4, 8, seed=4))
    official = _official_clustered_attention(q, k, v, means, 9)
    ours = routing_attention(_official_layer_norm(q), _official_layer_norm(k), v, means, 9, is_causal=False,
                             scale=1.0, impl=impl)
    routing = route(_official_layer_norm(q), _official_layer_norm(k), means, 9, False)
    count = torch.zeros(2, 2, 30).scatter_add_(-1, routing.query_members.flatten(2), torch.ones(2, 2, 36))
    torch.testing.assert_close(ours * (count / (count + 1e-2))[..., None], official)


# --- peer: lucidrains' routing-transformer 1.6.1 --------------------------------------------------------------------

def _peer(clusters: int, window: int, heads: int, dim: int, causal: bool, shared: bool, means: torch.Tensor,
          train: bool = False) -> torch.nn.Module:
    rt = pytest.importorskip("routing_transformer.routing_transformer")
    peer = rt.KmeansAttention(clusters, window, heads, dim, causal=causal, shared_qk=shared).double().train(train)
    peer.kmeans.means.copy_(means)
    peer.kmeans.initted.fill_(True)  # skip its k-means initialisation on the first batch: our centroids instead
    return peer


def _eps_counts(members: torch.Tensor, n: int) -> torch.Tensor:
    """``count / (count + 1e-5)``: lucidrains' scatter_mean divides by the count plus 1e-5."""
    count = torch.zeros(*members.shape[:2], n, dtype=torch.float64)
    count.scatter_add_(-1, members.flatten(2), torch.ones(members.flatten(2).shape, dtype=torch.float64))
    return (count / (count + 1e-5))[..., None]


@pytest.mark.parametrize("impl", IMPLS)
def test_peer_kmeans_attention_shared_causal(impl: str) -> None:
    """Shared QK, causal (its decoder default): it routes by the queries, attends with the raw queries to the
    L2-normalised keys at ``D^-0.5``, puts -5e4 on the self logit: our op given ``key = normalize(query)``."""
    q, v = _randn(2, 4, 64, 16, seed=1), _randn(2, 4, 64, 16, seed=2)
    means = _unit(4, 8, 16, seed=3)
    peer = _peer(8, 8, 4, 16, True, True, means)
    with torch.no_grad():
        expected, peer_loss = peer(q, q, v)
    out, loss = routing_attention(q, F.normalize(q, dim=-1), v, means, 8, is_causal=True, shared_qk=True, impl=impl,
                                  return_loss=True)
    members = route(q, q, means, 8, True).query_members
    torch.testing.assert_close(out * _eps_counts(members, 64), expected)
    torch.testing.assert_close(peer.kmeans.commitment * loss, peer_loss)


@pytest.mark.parametrize("impl", IMPLS)
def test_peer_kmeans_attention_separate_bidirectional(impl: str) -> None:
    """Separate queries and keys, not causal: it routes queries and keys apart (one k-means over both) and has no
    memory key; its commitment loss is the mean over queries and keys together, ours their sum."""
    q, k, v = _randn(2, 4, 64, 16, seed=1), _randn(2, 4, 64, 16, seed=2), _randn(2, 4, 64, 16, seed=3)
    means = _unit(4, 8, 16, seed=4)
    peer = _peer(8, 8, 4, 16, False, False, means)
    with torch.no_grad():
        expected, peer_loss = peer(q, k, v)
    out, loss = routing_attention(q, k, v, means, 8, is_causal=False, impl=impl, return_loss=True)
    members = route(q, k, means, 8, False).query_members
    torch.testing.assert_close(out * _eps_counts(members, 64), expected)
    torch.testing.assert_close(peer.kmeans.commitment * loss / 2, peer_loss)


@pytest.mark.parametrize("shared", [True, False])
def test_peer_kmeans_update(shared: bool) -> None:
    """Its training forward's ``kmeans_iter`` then ``update()`` (``ema_inplace`` at 0.999) equals ours."""
    q, k, v = _randn(2, 4, 64, 16, seed=1), _randn(2, 4, 64, 16, seed=2), _randn(2, 4, 64, 16, seed=3)
    k = q if shared else k
    means = _unit(4, 8, 16, seed=4)
    peer = _peer(8, 8, 4, 16, True, shared, means, train=True)
    with torch.no_grad():
        peer(q, k, v)
    peer.kmeans.update()
    routing = route(q, k, means, 8, shared)
    units = [routing.query_unit] if shared else [routing.query_unit, routing.key_unit]
    ours = ema_update_(means.clone(), units, list(routing.nearest()[:len(units)]), 0.999)
    torch.testing.assert_close(ours, peer.kmeans.means)


def test_peer_differs_with_separate_causal_routing() -> None:
    """Separate queries and keys, causal: it adds a learned memory key and value per cluster (``num_mem_kv = 1``),
    which every query also attends to; ours has none (a query that sees no key of a cluster skips it), so the
    outputs differ."""
    q, k, v = _randn(1, 2, 32, 8, seed=1), _randn(1, 2, 32, 8, seed=2), _randn(1, 2, 32, 8, seed=3)
    means = _unit(2, 4, 8, seed=4)
    peer = _peer(4, 8, 2, 8, True, False, means)
    assert peer.num_mem_kv == 1
    with torch.no_grad():
        expected, _ = peer(q, k, v)
    out = routing_attention(q, k, v, means, 8, is_causal=True)
    assert not torch.allclose(out, expected, atol=1e-3)
