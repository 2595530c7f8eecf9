"""google-research/google-research ``combiner/combiner/tf/approx_attention.py`` (read at commit
5b09c22d73a9d35eb6c5d2a99b95677a45053466), transcribed once from TensorFlow to PyTorch for the Combiner tests:
``get_causal_mask``, ``pooling_summary`` (identity / relu with max / mean / sum), ``sqrt_fixed_full`` and
``axial_rowmajor`` (``row_summary`` ``none``, ``wsum``, ``proj``, ``wsum_proj``), with ``attention.get_qkv``
(query scaled by ``head_size ** -0.5``), ``dot_product_attention``, ``ops.trail_dense`` (a dense layer with
bias), ``ops.postprocess`` (residual, dropout off) and ``ops.preprocess`` (pre-norm LayerNorm) as the official
code uses them. Tensors are laid out as the official ``[B, L, H, D]``; dropout is off (``is_training=False``)."""

import torch
import torch.nn.functional as F


def get_causal_mask(n, is_strict, upper=False, dtype=torch.float64):
    ones = torch.ones(n, n, dtype=dtype)
    if is_strict:
        mask = torch.tril(ones) if upper else torch.triu(ones)  # band_part(-1, 0) / band_part(0, -1)
    else:
        mask = 1.0 - torch.triu(ones) if upper else 1.0 - torch.tril(ones)
    return -1e9 * mask


def pooling_summary(x, axis, local_summary, keepdims=False):
    act, pool = local_summary.split("-")
    if act == "relu":
        x = F.relu(x)
    if pool == "mean":
        return x.mean(axis, keepdim=keepdims)
    if pool == "max":
        return x.amax(axis, keepdim=keepdims)
    return x.sum(axis, keepdim=keepdims)


def sqrt_fixed_full_heads(query, key, value, max_seg_len, causal, local_summary):
    """``sqrt_fixed_full`` after ``get_qkv``: ``query`` (already scaled), ``key``, ``value`` ``[B, L, H, D]``."""
    bsize, max_seq_len, num_heads, head_dim = query.shape
    num_seg = max_seq_len // max_seg_len
    cur_query = query.reshape(-1, num_seg, max_seg_len, num_heads, head_dim)
    merged_query = pooling_summary(cur_query, axis=2, local_summary=local_summary, keepdims=True)
    cur_key = key.reshape(cur_query.shape)
    cur_val = value.reshape(cur_query.shape)
    # dot_product_attention(merged_query, cur_key, cur_val, attn_axis=1): 'BUSNK,BUTNK->BUNST', 'BUNST,BUTNK->BUSNK'
    span_probs = torch.softmax(torch.einsum("BUSNK,BUTNK->BUNST", merged_query, cur_key), dim=-1)
    span_val = torch.einsum("BUNST,BUTNK->BUSNK", span_probs, cur_val).squeeze(2)
    span_key = pooling_summary(cur_key, axis=2, local_summary=local_summary, keepdims=False)
    local_logits = torch.einsum("bsqhd,bskhd->bsqhk", cur_query, cur_key)
    if causal:
        local_mask = get_causal_mask(max_seg_len, is_strict=False, dtype=query.dtype)
        local_logits = local_logits + local_mask.unsqueeze(-2)
    prev_logits = torch.einsum("bqhd,bkhd->bqhk", query, span_key)
    if causal:
        prev_mask = get_causal_mask(num_seg, is_strict=True, dtype=query.dtype)
        prev_mask = prev_mask.repeat_interleave(max_seg_len, dim=0)
        prev_logits = prev_logits + prev_mask.unsqueeze(1)
    joint_logits = torch.cat([local_logits.reshape(bsize, max_seq_len, num_heads, -1), prev_logits], dim=-1)
    attn_weights = torch.softmax(joint_logits, dim=-1)
    local_att, prev_att = attn_weights.split([max_seg_len, num_seg], dim=-1)
    local_att = local_att.reshape(bsize, num_seg, max_seg_len, num_heads, max_seg_len)
    local_merged = torch.einsum("bsqhk,bskhd->bsqhd", local_att, cur_val)
    prev_merged = torch.einsum("bqhk,bkhd->bqhd", prev_att, span_val)
    return prev_merged + local_merged.reshape(prev_merged.shape)


def axial_rowmajor_heads(q_row_local, key_row_local, value_row_local, max_seg_len, causal, row_summary="none",
                         project=None):
    """``axial_rowmajor`` from its ``get_qkv`` on: ``[B, num_seg, seg_len, H, D]`` inputs (query scaled);
    ``project(pre_summary) -> key_row`` the learned ``proj`` / ``wsum_proj`` head (``rowmajor_param_post``)."""
    local_logits = torch.einsum("bsqhd,bskhd->bsqhk", q_row_local, key_row_local)
    row_probs = torch.softmax(local_logits, dim=-1)
    row_attn_out = torch.einsum("bsqhk,bskhd->bsqhd", row_probs, value_row_local)
    if row_summary == "none":
        key_row = key_row_local
    else:
        if "wsum" in row_summary:
            pre_summary = torch.einsum("bsqhk,bskhd->bsqhd", row_probs, key_row_local)
        else:
            pre_summary = row_attn_out
        key_row = project(pre_summary) if "proj" in row_summary else pre_summary
    num_seg = q_row_local.shape[1]
    if causal:
        local_mask = get_causal_mask(max_seg_len, is_strict=False, dtype=q_row_local.dtype)
        local_logits = local_logits + local_mask[:, None, :]
    global_logits = torch.einsum("bqlhd,bklhd->bqlhk", q_row_local, key_row)
    if causal:
        global_mask = get_causal_mask(num_seg, is_strict=True, dtype=q_row_local.dtype)
        global_logits = global_logits + global_mask[:, None, None, :]
    joint_logits = torch.cat([local_logits, global_logits], dim=-1)
    attn_probs = torch.softmax(joint_logits, dim=-1)
    local_att, global_att = attn_probs.split([max_seg_len, num_seg], dim=-1)
    local_merged = torch.einsum("bsqhk,bskhd->bsqhd", local_att, value_row_local)
    global_merged = torch.einsum("bqlhv,bvlhd->bqlhd", global_att, row_attn_out)
    return local_merged + global_merged


def get_qkv(x, wq, bq, wk, bk, wv, bv, num_heads):
    """``attention.get_qkv``: three ``trail_dense`` to ``[num_heads, head_size]``, the query scaled."""
    head_size = wq.shape[0] // num_heads
    split = lambda t: t.unflatten(-1, (num_heads, head_size))
    return (split(F.linear(x, wq, bq)) * head_size ** -0.5, split(F.linear(x, wk, bk)), split(F.linear(x, wv, bv)))


def axial_rowmajor(x, weights, num_heads, max_seg_len, causal, row_summary):
    """The whole official layer on ``x`` ``[B, L, C]``: ``weights`` holds ``q/k/v/out`` (weight, bias) and, for
    the ``proj`` summaries, ``post`` (dense), ``norm`` (LayerNorm weight, bias) and ``key`` (dense)."""
    bsize, seq_len, model_size = x.shape
    num_seg = seq_len // max_seg_len
    x_sqr = x.reshape(bsize, num_seg, max_seg_len, model_size)
    q, k, v = get_qkv(x_sqr, *weights["q"], *weights["k"], *weights["v"], num_heads)

    def project(pre_summary):
        key_row = F.linear(pre_summary.flatten(-2), *weights["post"])  # trail_dense(begin_axis=-2)
        key_row = x_sqr + key_row  # ops.postprocess: dropout off, no drop-connect
        key_row = F.layer_norm(key_row, (model_size,), *weights["norm"])  # ops.preprocess: pre-norm
        return F.linear(key_row, *weights["key"]).unflatten(-1, (num_heads, -1))

    merged = axial_rowmajor_heads(q, k, v, max_seg_len, causal, row_summary, project)
    return F.linear(merged.reshape(bsize, seq_len, model_size), *weights["out"])


def sqrt_fixed_full(x, weights, num_heads, max_seg_len, causal, local_summary):
    """The whole official layer on ``x`` ``[B, L, C]`` with ``q/k/v/out`` (weight, bias)."""
    q, k, v = get_qkv(x, *weights["q"], *weights["k"], *weights["v"], num_heads)
    merged = sqrt_fixed_full_heads(q, k, v, max_seg_len, causal, local_summary)
    return F.linear(merged.flatten(-2), *weights["out"])
