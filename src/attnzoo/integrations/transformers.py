"""Swap the attention of a Hugging Face ``transformers`` model for a registered attnzoo op (extra ``attnzoo[hf]``,
tested with transformers 5.24).

It uses transformers' own extension point: an attention function registered with ``AttentionInterface`` under
the name :data:`IMPLEMENTATION` (with ``sdpa_mask`` as its mask builder, so models hand it SDPA's boolean
``(B, 1, Nq, Nk)`` masks, ``True`` = take part, or ``None`` where SDPA would rely on ``is_causal``), selected with
``model.set_attn_implementation``. Every attention module of the model then calls :func:`attention_forward`,
which

- turns the module's ``(B, H, N, D)`` query and its KV cache's ``(B, Hkv, Nk, D)`` keys into one op call
  (``enable_gqa`` when the model has fewer KV heads), with the module's ``scaling`` and its ``dropout``
  (``attention_dropout`` while training, 0 in eval, as the model passes it);
- converts HF's mask: a mask that is the op's own causal pattern (bottom-right aligned) or none, and hides
  whole keys, becomes ``key_padding_mask``; any other one goes as a boolean (or additive) ``attn_mask``;
- returns ``(B, Nq, H, Dv)`` as transformers expects.

Variants: ``softmax_attention`` (reproduces the model: the tests compare logits and greedy generation with a KV
cache) and any sequence op of the registry taking ``is_causal`` and the drop-in options, e.g.
``sliding_window_attention`` with ``window=``. Options that cannot be honoured are refused with
:class:`attnzoo.NotSupportedError` (naming the model and what is missing): a position bias, softcapping or
attention sinks of the model, grouped KV heads or a mask for an op without them, and for position-dependent
patterns (windows) a static cache, whose unfilled slots break the queries-are-the-last-positions alignment.

>>> with swap_attention(model, "sliding_window_attention", window=128):   # doctest: +SKIP
...     logits = model(ids, attention_mask=mask).logits
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from attnzoo.registry import SEQUENCE, NotSupportedError, get_variant

IMPLEMENTATION = "attnzoo"
"""The name the attention function is registered under in transformers' ``AttentionInterface``."""
_OPTIONS = "_attnzoo_swap"
"""The attribute each swapped module carries: ``(variant, options, model name)``."""
_UNSUPPORTED_KWARGS = ("position_bias", "softcap", "s_aux", "sinks")


def _transformers() -> Any:  # noqa: ANN401
    try:
        import transformers
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("attnzoo.integrations.transformers needs transformers: pip install 'attnzoo[hf]'") from error
    return transformers


_REGISTERED = False


def register() -> None:
    """Register :func:`attention_forward` and SDPA's mask builder under :data:`IMPLEMENTATION` (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    transformers = _transformers()
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    transformers.AttentionInterface.register(IMPLEMENTATION, attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    _REGISTERED = True


def _bottom_right_causal(nq: int, nk: int, device: torch.device) -> torch.Tensor:
    return torch.arange(nk - nq, nk, device=device)[:, None] >= torch.arange(nk, device=device)[None, :]


def convert_mask(mask: torch.Tensor | None, causal: bool, nq: int, nk: int,
                 dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """HF's attention mask as the op's drop-in options: ``{}`` (none), ``{"key_padding_mask": (B, Nk)}`` when
    the mask is exactly the op's own pattern (causal bottom-right if ``causal``, else full) with whole keys
    hidden, else ``{"attn_mask": mask}`` (boolean ``True`` = take part, or additive in ``dtype``)."""
    if mask is None:
        return {}
    if mask.dim() != 4 or mask.shape[-2:] != (nq, nk):
        raise NotSupportedError(f"attention mask of shape {tuple(mask.shape)}: expected (B, 1 or H, {nq}, {nk})")
    if mask.dtype != torch.bool:
        return {"attn_mask": mask.to(dtype)}
    if mask.shape[1] == 1:
        padding = ~mask.any(dim=-2)[:, 0]  # keys no query sees
        pattern = _bottom_right_causal(nq, nk, mask.device) if causal else torch.ones(nq, nk, dtype=torch.bool,
                                                                                       device=mask.device)
        if torch.equal(pattern & ~padding[:, None, None, :], mask):
            return {"key_padding_mask": padding} if bool(padding.any()) else {}
    return {"attn_mask": mask}


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:  # noqa: ANN401
    """transformers' attention-function signature: ``(B, H, Nq, D)`` query, ``(B, Hkv, Nk, D)`` key/value (the
    KV cache included) -> ``((B, Nq, H, Dv), None)``, through the op the module was swapped to."""
    swap = getattr(module, _OPTIONS, None)
    if swap is None:
        raise NotSupportedError(f"{type(module).__name__} runs attn_implementation={IMPLEMENTATION!r} but was not "
                                "swapped: use attnzoo.integrations.transformers.swap_attention(model, ...)")
    variant, options, model_name = swap
    present = [name for name in _UNSUPPORTED_KWARGS if kwargs.get(name) is not None]
    if present:
        raise NotSupportedError(f"{model_name}: {variant} cannot take the model's {', '.join(present)}")
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", False))
    nq, nk = query.shape[2], key.shape[2]
    if attention_mask is None and causal and 1 < nq < nk:
        # as transformers' SDPA path: an empty static cache's prefill, its unfilled slots after the queries
        key, value = key[:, :, :nq], value[:, :, :nq]
        nk = nq
    dropin = convert_mask(attention_mask, causal, nq, nk, query.dtype)
    if "attn_mask" in dropin and options.get("_positional") and dropin["attn_mask"].dtype == torch.bool \
            and causal and not bool(dropin["attn_mask"][..., -1, -1].any()):
        raise NotSupportedError(f"{model_name}: the last query sees no last key, as with a static cache's unfilled "
                                f"slots; {variant}'s pattern needs the queries at the last key positions (use the "
                                "default dynamic cache)")
    if key.shape[1] != query.shape[1]:
        dropin["enable_gqa"] = True
    if dropout:
        dropin["dropout_p"] = float(dropout)
    public = {k: v for k, v in options.items() if not k.startswith("_")}
    # an explicit mask from transformers already holds the causal pattern in its own positions: full attention
    # takes it as it is; a window keeps its causal flag (it decides the window's shape)
    op_causal = causal and ("attn_mask" not in dropin or options["_positional"])
    try:
        out = get_variant(variant).op(query, key, value, is_causal=op_causal, scale=scaling, **public, **dropin)
    except NotSupportedError as error:
        raise NotSupportedError(f"{model_name} with {variant}: {error}") from error
    return out.transpose(1, 2).contiguous(), None


def _model_name(model: torch.nn.Module) -> str:
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return f"{type(model).__name__}({path})" if path else type(model).__name__


def _check_variant(model: torch.nn.Module, variant: str, options: dict[str, Any]) -> dict[str, Any]:
    """Refuse up front what the op cannot take: not a ``(B, H, N, D)`` op, no ``is_causal``, grouped KV heads
    without ``enable_gqa``, unknown options; returns the options with ``_positional`` (a window-like pattern)."""
    name = _model_name(model)
    found = get_variant(variant)
    if found.layout != SEQUENCE:
        raise NotSupportedError(f"{name}: {found.name} has layout {found.layout}; a transformers model needs a "
                                f"{SEQUENCE} op")
    params = inspect.signature(found.op).parameters
    needed = ["is_causal", "scale"]
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if heads and kv_heads != heads:
        needed.append("enable_gqa")
    missing = [p for p in needed if p not in params]
    if missing:
        raise NotSupportedError(f"{name}: {found.name} takes no {', '.join(missing)} (the model needs "
                                f"{'grouped KV heads' if 'enable_gqa' in missing else 'them'}); use an op that "
                                "does, e.g. softmax_attention")
    unknown = [k for k in options if k not in params or k in ("query", "key", "value", "is_causal", "scale")]
    if unknown:
        raise ValueError(f"{name}: {found.name} has no option {', '.join(map(repr, unknown))}; it takes "
                         f"{', '.join(p for p in params if p not in ('query', 'key', 'value'))}")
    return {**options, "_positional": found.name != "softmax_attention"}


class AttentionSwap:
    """A model whose attention runs through an attnzoo op until :meth:`restore` (or the ``with`` block ends)."""

    def __init__(self, model: torch.nn.Module, variant: str, options: dict[str, Any]) -> None:
        register()
        if not hasattr(model, "set_attn_implementation"):
            raise NotSupportedError(f"{_model_name(model)} is not a transformers PreTrainedModel "
                                    "(no set_attn_implementation)")
        self.model, self.variant = model, get_variant(variant).name
        options = _check_variant(model, self.variant, dict(options))
        self.previous = model.config._attn_implementation
        name = _model_name(model)
        self.modules = list(model.modules())
        for module in self.modules:
            setattr(module, _OPTIONS, (self.variant, options, name))
        try:
            model.set_attn_implementation(IMPLEMENTATION)
        except Exception:
            self._unmark()
            raise
        self.active = True

    def _unmark(self) -> None:
        for module in self.modules:
            if hasattr(module, _OPTIONS):
                delattr(module, _OPTIONS)

    def restore(self) -> torch.nn.Module:
        """Give the model back its previous attention implementation; returns the model."""
        if self.active:
            self.model.set_attn_implementation(self.previous)
            self._unmark()
            self.active = False
        return self.model

    def __enter__(self) -> torch.nn.Module:
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.restore()


def swap_attention(model: torch.nn.Module, variant: str = "softmax_attention", **options: Any) -> AttentionSwap:  # noqa: ANN401
    """Route every attention module of the transformers ``model`` through the registered op ``variant`` with
    ``options`` (e.g. ``window=128`` for ``sliding_window_attention``, ``impl=``). Takes effect at once; use the
    result as a context manager, or call its ``.restore()``. See the module docstring for what is converted and
    what is refused."""
    return AttentionSwap(model, variant, options)


__all__ = ["IMPLEMENTATION", "AttentionSwap", "attention_forward", "convert_mask", "register", "swap_attention"]
