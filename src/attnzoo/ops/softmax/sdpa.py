"""Full softmax attention through ``torch.nn.functional.scaled_dot_product_attention``.

Every mask of a call (bottom-right causal, boolean ``attn_mask``, key padding, the block-diagonal mask of packed
sequences) is folded into one boolean mask, or into the additive ``attn_mask`` as ``-inf``; with no mask at all,
``is_causal`` goes to SDPA itself where its top-left alignment agrees (``Nq == Nk``; a single query sees every
key), so SDPA keeps its flash kernels. Grouped KV heads use SDPA's ``enable_gqa``, dropout its ``dropout_p``.
A query that sees no key gets an unmasked row (so no NaN reaches the backward), then zeros by multiplication:
outputs and gradients as the drop-in convention says. SDPA's CPU flash kernel has no double backward: the call
runs inside an ``autograd.Function`` whose backward is first order (differentiating twice raises
:class:`attnzoo.NotSupportedError`); under ``torch.compile`` SDPA is called directly, which dynamo traces."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.dropin import DropIn, dropin_visibility
from attnzoo.ops.softmax.functional import causal_mask_mod
from attnzoo.validation import first_order_only


def combined_mask(query: torch.Tensor, key: torch.Tensor, is_causal: bool,
                  dropin: DropIn) -> tuple[torch.Tensor | None, bool, torch.Tensor | None]:
    """``(mask, sdpa_is_causal, sees_any)``: the one SDPA mask of the call (boolean ``True`` = take part, or
    additive), whether SDPA's own ``is_causal`` is to be used instead, and ``(B or 1, H or 1, Nq, 1)`` whether
    each query sees some key (``None``: every query does)."""
    b, hq, nq, _ = query.shape
    nk = key.shape[2]
    additive = dropin.attn_mask if dropin.attn_mask is not None and dropin.attn_mask.dtype != torch.bool else None
    causal = is_causal and nq > 1  # one query at the last position sees every key
    explicit = (causal and (nq != nk or additive is not None)) or dropin.key_padding_mask is not None \
        or dropin.cu_seqlens is not None or (dropin.attn_mask is not None and additive is None)
    if not explicit:
        if additive is None:
            return None, causal, None
        hidden = additive == float("-inf")
        if not hidden.any():
            return additive, False, None
        visible = ~hidden
    else:
        visible = dropin_visibility(causal_mask_mod if causal else None, dropin, (b, hq, nq, nk), query.device)
        if additive is not None:
            visible = visible & (additive != float("-inf"))
    sees_any = visible.any(-1, keepdim=True)
    if bool(sees_any.all()):
        sees_any = None
    else:
        visible = visible | ~sees_any  # an unmasked row for a query that sees nothing (zeroed afterwards)
    if additive is None:
        return visible, False, sees_any
    if sees_any is not None:
        additive = additive.masked_fill(~sees_any, 0)
    return additive.masked_fill(~visible, float("-inf")), False, sees_any


class _SDPA(torch.autograd.Function):
    """SDPA with a first-order backward: the forward keeps SDPA's own graph (freed with this node), the backward
    differentiates it (retaining it, so that a graph kept with ``retain_graph=True`` can run backward again)."""

    @staticmethod
    def forward(ctx, options: dict, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,  # noqa: ANN001
                mask: torch.Tensor | None) -> torch.Tensor:
        ctx.float_mask = mask is not None and mask.is_floating_point()
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(needs) for t, needs in
                      zip((query, key, value, mask), ctx.needs_input_grad[1:]) if t is not None]
            inner_mask = leaves[3] if mask is not None else None
            out = F.scaled_dot_product_attention(*leaves[:3], attn_mask=inner_mask, **options)
        ctx.inner = out, leaves
        ctx.save_for_backward(query, key, value)
        return out.detach()

    @staticmethod
    @first_order_only("softmax_attention(impl='sdpa')")
    def backward(ctx, grad: torch.Tensor) -> tuple:  # noqa: ANN001
        out, leaves = ctx.inner
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad, retain_graph=True) if wanted and out.requires_grad else ())
        result = [next(grads) if leaf.requires_grad else None for leaf in leaves]
        result += [None] * (4 - len(result))
        return (None, *result)


def first_order_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                     options: dict) -> torch.Tensor:
    """``F.scaled_dot_product_attention(query, key, value, attn_mask=mask, **options)``, through :class:`_SDPA`
    (first-order backward) when a gradient is wanted outside ``torch.compile``."""
    if torch.is_grad_enabled() and not torch.compiler.is_compiling() \
            and any(t is not None and t.requires_grad for t in (query, key, value, mask)):
        return _SDPA.apply(options, query, key, value, mask)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, **options)


def softmax_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, scale: float,
                 dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, Hq, Nq, D)`` queries against ``(B, Hkv, Nk, D)`` keys through one SDPA call (see the module)."""
    mask, sdpa_causal, sees_any = combined_mask(query, key, is_causal, dropin)
    options = {"dropout_p": dropin.dropout_p, "is_causal": sdpa_causal, "scale": scale, "enable_gqa": dropin.gqa}
    out = first_order_sdpa(query, key, value, mask, options)
    return out if sees_any is None else out * sees_any
