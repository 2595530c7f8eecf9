"""Pointer Network (Vinyals, Fortunato & Jaitly 2015, arXiv 1506.03134): an LSTM encoder over the input
elements, an LSTM decoder fed the previously pointed element, and pointer attention
(:class:`attnzoo.layers.pointer.PointerAttention`) whose softmax over the input positions is each output.

As the paper (Sec. 2.3, Fig. 1b): the encoder reads ``P_1..P_n`` (each an ``input_dim`` vector: a number, a 2-D
point) giving ``e_1..e_n``; the decoder starts from the encoder's final state with a learned "go" input and, at
step ``i``, reads the element pointed to at step ``i-1`` (the target's under teacher forcing in training, its own
greedy choice at inference) giving ``d_i``; ``p(C_i | C_<i, P) = softmax_j(vᵀ tanh(W1 e_j + W2 d_i))``. The LSTMs
take the raw elements (no embedding), single-layer, as the paper's; all weights start ``U(-0.08, 0.08)``
(the paper's recalled init; :data:`INIT_RANGE`). ``mask_chosen`` forbids inputs already pointed to (the paper
constrains its TSP beam search to valid tours this way); off, the decoder may point to an input twice. Greedy
decoding, not the paper's beam search. Verified: the forward under teacher forcing equals a step-by-step
decode fed the same targets, and the network overfits a fixed batch (``tests/test_pointer.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.pointer import PointerAttention
from attnzoo.validation import check_flag, check_int

INIT_RANGE = 0.08
"""Uniform init range of every weight (paper Sec. 4: ``U(-0.08, 0.08)``, recalled in the catalog)."""


class PointerNetwork(nn.Module):
    """LSTM encoder, LSTM decoder and pointer attention (see the module): inputs ``(B, n, input_dim)``, logits
    ``(B, n, n)`` (step ``i``, input position ``j``; ``-inf`` at masked positions).

    ``forward(inputs, targets)`` runs teacher forcing (``targets`` ``(B, n)`` long, a permutation of the input
    positions as in sorting, or any positions without ``mask_chosen``) and returns the logits of every step at
    once: the decoder LSTM runs over ``[go, P_{t_1}, ..., P_{t_{n-1}}]`` and the pointer scores all ``n`` steps in
    one :func:`~attnzoo.ops.pointer.pointer_attention` call. :meth:`decode` points greedily step by step. Time
    O(n · hidden²) for the LSTMs plus O(n² · attn_dim) for the pointer, per sequence.
    """

    def __init__(self, hidden: int, input_dim: int = 1, attn_dim: int | None = None, mask_chosen: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.hidden, self.input_dim = check_int("hidden", hidden), check_int("input_dim", input_dim)
        self.attn_dim = hidden if attn_dim is None else check_int("attn_dim", attn_dim)
        self.mask_chosen = check_flag("mask_chosen", mask_chosen)
        self.encoder = nn.LSTM(input_dim, hidden, batch_first=True)
        self.decoder = nn.LSTM(input_dim, hidden, batch_first=True)
        self.go = nn.Parameter(torch.empty(input_dim))
        self.pointer = PointerAttention(hidden, self.attn_dim, impl=impl)
        for p in self.parameters():
            nn.init.uniform_(p, -INIT_RANGE, INIT_RANGE)

    def _check_inputs(self, inputs: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
            raise TypeError(f"inputs must be a floating torch.Tensor (B, n, input_dim), got "
                            f"{inputs.dtype if isinstance(inputs, torch.Tensor) else type(inputs).__name__}")
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_dim or inputs.shape[1] == 0:
            raise ValueError(f"inputs has shape {tuple(inputs.shape)}; expected (B, n >= 1, input_dim="
                             f"{self.input_dim})")

    def encode(self, inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Encoder states ``(B, n, hidden)`` and the final ``(h, c)`` that starts the decoder."""
        self._check_inputs(inputs)
        return self.encoder(inputs)

    def _go(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.go.expand(inputs.shape[0], 1, self.input_dim)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, n, n)`` of pointing to input ``j`` at step ``i``."""
        encoded, state = self.encode(inputs)
        b, n, _ = inputs.shape
        if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or tuple(targets.shape) != (b, n):
            raise ValueError(f"targets must be a long tensor (B, n) = {(b, n)} of input positions, got "
                             f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}"
                             f"{f' {targets.dtype}' if isinstance(targets, torch.Tensor) else ''}")
        if bool(((targets < 0) | (targets >= n)).any()):
            raise ValueError(f"targets hold positions outside [0, {n}): min {int(targets.min())}, max "
                             f"{int(targets.max())}")
        pointed = torch.gather(inputs, 1, targets[:, :-1, None].expand(-1, -1, self.input_dim))
        decoded, _ = self.decoder(torch.cat([self._go(inputs), pointed], dim=1), state)
        mask = None
        if self.mask_chosen:  # step i may not point to targets[:, :i]
            chosen = torch.zeros(b, n, n, dtype=torch.bool, device=inputs.device)
            chosen[:, 1:].scatter_(-1, targets[:, :-1, None], True)
            mask = ~chosen.cumsum(1).bool()
        return self.pointer(decoded, encoded, mask=mask, return_logits=True)

    @torch.no_grad()
    def decode(self, inputs: torch.Tensor, mask_chosen: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy pointers ``(B, n)`` and their logits ``(B, n, n)``, each step fed the element it pointed to
        before. ``mask_chosen`` (default: the network's) forbids pointing to an input twice."""
        mask_chosen = self.mask_chosen if mask_chosen is None else check_flag("mask_chosen", mask_chosen)
        encoded, state = self.encode(inputs)
        b, n, _ = inputs.shape
        allowed = torch.ones(b, 1, n, dtype=torch.bool, device=inputs.device)
        step_input, pointers, logits = self._go(inputs), [], []
        for _ in range(n):
            decoded, state = self.decoder(step_input, state)
            scores = self.pointer(decoded, encoded, mask=allowed if mask_chosen else None, return_logits=True)
            choice = scores.argmax(-1)                                         # (B, 1)
            allowed = allowed.scatter(-1, choice[..., None], False)
            step_input = torch.gather(inputs, 1, choice[..., None].expand(-1, -1, self.input_dim))
            pointers.append(choice)
            logits.append(scores)
        return torch.cat(pointers, dim=1), torch.cat(logits, dim=1)
