"""Swap the attention of timm models (``timm.layers.Attention``, the ViT / DeiT / EVA-style block) for a registered
attnzoo op.

Written against the structure of timm's ``Attention`` module (timm 1.0.x), found by duck typing: a ``qkv``
Linear of ``3 * num_heads * head_dim`` outputs, ``num_heads``, ``head_dim``, ``scale``, ``q_norm`` / ``k_norm``,
``attn_drop``, ``norm``, ``proj``, ``proj_drop`` and ``fused_attn``. ``import timm`` needs torchvision, which does
not import beside this project's torch build (2.13.0+cpu), so timm is never imported here and the tests run the
adapter on a hand-built module of that structure (``tests/test_integrations_timm.py``), not on a real timm model:
a timm release that changes the block's layout would go unnoticed until tested with timm itself.

Each matching module's ``forward`` is replaced on the instance (its class is untouched) by one that computes
the same projections and norms and calls ``variant``'s op with ``is_causal=False``, the module's ``scale``, its
``attn_mask`` argument and its attention dropout while training; :meth:`TimmSwap.restore` puts the original
``forward`` back.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch
from torch import nn

from attnzoo.registry import SEQUENCE, NotSupportedError, get_variant

_ATTRIBUTES = ("qkv", "num_heads", "head_dim", "scale", "proj", "fused_attn")


def is_timm_attention(module: nn.Module) -> bool:
    """Whether ``module`` has the structure of timm's ``Attention`` (see the module docstring)."""
    return all(hasattr(module, name) for name in _ATTRIBUTES) and isinstance(module.qkv, nn.Linear) \
        and module.qkv.out_features == 3 * module.num_heads * module.head_dim


def _forward(variant: str, options: dict[str, Any]) -> Any:  # noqa: ANN401
    op = get_variant(variant).op

    def forward(self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = getattr(self, "q_norm", nn.Identity())(q), getattr(self, "k_norm", nn.Identity())(k)
        drop = getattr(self, "attn_drop", None)
        dropin: dict[str, Any] = {} if attn_mask is None else {"attn_mask": attn_mask}
        if self.training and drop is not None and drop.p > 0:
            dropin["dropout_p"] = drop.p
        out = op(q, k, v, is_causal=False, scale=self.scale, **options, **dropin)
        out = out.transpose(1, 2).reshape(b, n, -1)
        out = getattr(self, "norm", nn.Identity())(out)
        return getattr(self, "proj_drop", nn.Identity())(self.proj(out))

    return forward


class TimmSwap:
    """The timm attention modules of a model running through an attnzoo op until :meth:`restore`."""

    def __init__(self, model: nn.Module, variant: str, options: dict[str, Any]) -> None:
        found = get_variant(variant)
        params = inspect.signature(found.op).parameters
        if found.layout != SEQUENCE or "is_causal" not in params or "scale" not in params:
            raise NotSupportedError(f"{type(model).__name__}: {found.name} is not a (B, H, N, D) op taking is_causal "
                                    "and scale, which timm's Attention needs")
        self.modules = [m for m in model.modules() if is_timm_attention(m)]
        if not self.modules:
            raise NotSupportedError(f"{type(model).__name__} has no module with the structure of timm's Attention "
                                    f"({', '.join(_ATTRIBUTES)})")
        forward = _forward(found.name, dict(options))
        for module in self.modules:
            module.forward = types.MethodType(forward, module)

    def restore(self) -> None:
        """Put each module's own ``forward`` back."""
        for module in self.modules:
            module.__dict__.pop("forward", None)

    def __enter__(self) -> TimmSwap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def swap_attention(model: nn.Module, variant: str = "softmax_attention", **options: Any) -> TimmSwap:  # noqa: ANN401
    """Route every timm ``Attention`` module of ``model`` through ``variant`` with ``options`` (e.g.
    ``window=15`` for ``sliding_window_attention``: bidirectional, so odd); a context manager, or call
    ``.restore()``."""
    return TimmSwap(model, variant, options)


__all__ = ["TimmSwap", "is_timm_attention", "swap_attention"]
