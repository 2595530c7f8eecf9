"""Cases for the library's own implementations and for the dense masked SDPA baseline.

What our implementations can run comes from their declared capabilities in the registry (no second list
here): a variant that is not registered, an implementation whose software is missing, one that does not run on
the benchmark's ``device`` or one without a backward there becomes a skip reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload
from attnzoo.masks import Pattern, dense_mask
from attnzoo.registry import get_variant

DEVICE = "cpu"
"""The default device of every case builder here (each takes ``device=``)."""
DENSE_SCORE_LIMIT = 2**31
"""Dense masked SDPA runs while ``B · H · N^2 <= 2^31``: the 16k x 16k bool mask (256 MB) and SDPA's float copy
of it (1 GB) fit easily, but at ``2^32`` one forward + backward takes about a minute here, over the full run's
time budget."""

DENSE_SDPA = "dense-sdpa"


def device_type(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``: the key of the registry's declared devices."""
    return torch.device(device).type


def registry_case(workload: Workload, impl: str, forward: Callable[[Inputs, Any], torch.Tensor],
                  prepare: Callable[[], Any] | None = None, note: str = "", device: str = DEVICE) -> Case:
    """A case running registry implementation ``impl`` of ``workload.variant`` on ``device``; skip reasons
    from its declared capabilities."""
    try:
        implementation = get_variant(workload.variant).implementations.get(impl)
    except KeyError:
        return Case(workload, impl, forward, skip=f"variant {workload.variant!r} is not registered")
    if implementation is None:
        return Case(workload, impl, forward, skip=f"{workload.variant} has no implementation {impl!r}")
    caps, kind = implementation.capabilities, device_type(device)
    skip = caps.available() or (None if kind in caps.devices else f"{impl} does not run on {kind}")
    backward_skip = None if kind in caps.backward_devices else (
        f"{impl} declares no backward on {kind} (backward on: {sorted(caps.backward_devices) or 'none'})")
    return Case(workload, impl, forward, prepare=prepare, skip=skip, backward_skip=backward_skip, note=note)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, *grid, D)`` -> ``(B, H, N, D)`` (a view for contiguous inputs)."""
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


def dense_sdpa_case(workload: Workload, pattern: Pattern, device: str = DEVICE) -> Case:
    """The baseline: ``F.scaled_dot_product_attention`` on the flattened grid with the pattern's dense
    ``N x N`` boolean mask (built from its mask function in the set-up)."""

    def prepare() -> torch.Tensor:
        return dense_mask(pattern.mask_mod(), pattern.num_tokens, pattern.num_tokens, device=device).contiguous()

    def forward(inputs: Inputs, mask: torch.Tensor) -> torch.Tensor:
        q = inputs["query"]
        out = F.scaled_dot_product_attention(_flat(q), _flat(inputs["key"]), _flat(inputs["value"]), attn_mask=mask)
        return out.reshape(q.shape)

    skip = None
    if workload.score_entries > DENSE_SCORE_LIMIT:
        skip = (f"B*H*N^2 = {workload.score_entries:.2e} score entries > {DENSE_SCORE_LIMIT:.2e}: one fwd+bwd "
                "would take about a minute, over the full run's time budget (memory would fit)")
    return Case(workload, DENSE_SDPA, forward, prepare=prepare, baseline=True, skip=skip,
                note="F.scaled_dot_product_attention with the N x N bool mask")


def flex_block_mask_prepare(pattern: Pattern, device: str = DEVICE) -> Callable[[], Any]:
    """Set-up of the Flex path: build (and cache) the pattern's block mask on ``device``."""

    def prepare() -> Any:
        from attnzoo.ops.flex import block_mask

        return block_mask(pattern, device)

    return prepare
