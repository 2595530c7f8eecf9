"""Lightning attention (arXiv 2405.17381): causal decayed linear attention in three forms that compute the same
function.

For one (batch, head), queries and keys ``(N, D)``, values ``(N, E)``, a slope ``s >= 0`` (``λ = exp(-s)``;
``None`` means ``s = 0``, plain causal linear attention) and a start state ``S_{-1}`` ``(D, E)``::

    S_t = λ S_{t-1} + k_t v_tᵀ,        o_t = S_tᵀ q_t = Σ_{j<=t} λ^{t-j} (q_t·k_j) v_j + λ^{t+1} S_{-1}ᵀ q_t

Every form takes ``(query, key, value, decay, initial_state, block_size, output_final_state)`` with inputs
``(B, H, N, D)`` / ``(B, H, N, E)``, ``decay`` ``(H,)`` or ``None``, ``initial_state`` ``(B, H, D, E)`` or
``None``, and returns ``(out (B, H, N, E), final_state (B, H, D, E) or None)``. ``block_size`` is used by the
chunked form only. All three are differentiable by autograd (including in ``decay`` and ``initial_state``).

- :func:`~attnzoo.ops.lightning.reference.decayed_reference` — the oracle: ``O = ((Q Kᵀ) ⊙ M) V`` with ``M_ij =
  λ^{i-j}`` for ``i >= j`` (``lightning_attn/ops/torch/linear_attention.py::get_mask`` of the official code). O(N²
  (D + E)) time and O(N²) memory.
- :func:`~attnzoo.ops.lightning.chunked.decayed_chunked` — lightning attention's tiling (``lightning_attn2.py``):
  inside a block of ``B`` tokens conventional masked attention, across blocks the carried ``D x E`` state. The
  official kernel runs the blocks sequentially; here every block is computed at once with batched GEMMs and the
  carried states come from a loop-free two-level decayed prefix sum over blocks
  (:func:`~attnzoo.ops.lightning.chunked.decayed_block_prefix`), so eager autograd and ``torch.compile`` see no
  Python loop over the sequence. O(N (B + D) E) time, O(N (B + D E / B)) memory for autograd. Autograd's backward
  runs the same eight GEMMs a hand-written one would: one was written and measured (16k tokens, 4 heads, D = E =
  64): no faster, and 1.5x the peak memory, so it was dropped.
- :func:`~attnzoo.ops.lightning.recurrent.decayed_recurrent` — one token at a time (decoding): O(D E) time and
  memory per token, independent of how many tokens came before.
"""

from attnzoo.ops.lightning.functional import alibi_slopes, lightning_attention, tnl_slopes

__all__ = ["alibi_slopes", "lightning_attention", "tnl_slopes"]
