"""Time attnzoo.quant's integer and packed linear layers against float32 ``F.linear`` on this CPU.

Rows: float32 ``F.linear``; W8A8 :func:`attnzoo.quant.int8_linear` (per-token activation quantisation at each
call + ``torch._int_mm`` + rescale); ``torch._int_mm`` alone on pre-quantized activations; weight-only
:func:`attnzoo.quant.weight_only_int8_linear` (``torch._weight_int8pack_mm``); torch's deprecated
``torch.ao`` dynamic quantized linear (fbgemm / x86 backend) as a peer; and the storage path
:class:`attnzoo.quant.PackedLinear` with int4 codes (unpack + dequantize + ``F.linear`` at each call).
Median and minimum of ``--repeats`` timed calls after warm-up, milliseconds, with the ratio of the medians to
float32 measured in the same run. On a shared, loaded machine the medians carry the scheduler's noise; the
minima estimate the uncontended cost.

    python examples/int8_matmul_timing.py --repeats 50 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant import Granularity, Int8Linear, PackedLinear, QuantLinear, UniformQuantizer
from attnzoo.quant.int8 import quantize_int8_rows

SHAPES = [(1, 576, 1536), (16, 576, 1536), (128, 384, 1536), (512, 1024, 4096)]
"""(tokens, in, out): SmolLM2 decoding one / 16 tokens through an MLP projection, a MiniLM FFN over one
128-token sentence batch, a larger prefill."""


def timings_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> tuple[float, float]:
    """(median, minimum) in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def torch_ao_dynamic(linear: nn.Linear) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic
            return quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)
    except Exception:  # noqa: BLE001 - the peer is optional (deprecated in torch 2.13)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, quantized engine {torch.backends.quantized.engine}")
    print("| tokens x in x out | fp32 F.linear | W8A8 int8_linear | _int_mm only | weight-only int8 | "
          "torch.ao dynamic | PackedLinear int4 |")
    print("|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for m, k, n in SHAPES:
            linear = nn.Linear(k, n)
            x = torch.randn(m, k)
            w8a8, w8 = Int8Linear.from_linear(linear, "dynamic"), Int8Linear.from_linear(linear, "weight_only")
            x_codes, _ = quantize_int8_rows(x)
            int4 = PackedLinear.from_quant_linear(QuantLinear.from_module(
                linear, weight_quantizer=UniformQuantizer(4, symmetric=False, granularity=Granularity.per_group(32))))
            ao = torch_ao_dynamic(linear)
            rows = {"fp32": lambda: F.linear(x, linear.weight, linear.bias), "w8a8": lambda: w8a8(x),
                    "int_mm": lambda: torch._int_mm(x_codes, w8a8.codes.t()), "w8": lambda: w8(x),
                    "ao": (lambda: ao(x)) if ao is not None else None, "int4": lambda: int4(x)}
            times = {key: timings_ms(fn, args.repeats) if fn is not None else (float("nan"),) * 2
                     for key, fn in rows.items()}
            base = times["fp32"][0]
            cells = [f"{med:.3f} / {low:.3f}" + ("" if key == "fp32" else f" ({base / med:.2f}x)")
                     for key, (med, low) in times.items()]
            print(f"| {m} x {k} x {n} | " + " | ".join(cells) + " |")
    print("median / min ms; (x) = median speed-up over fp32 F.linear in the same run (> 1 is faster)")


if __name__ == "__main__":
    main()
