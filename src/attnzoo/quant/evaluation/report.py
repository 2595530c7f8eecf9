"""``attnzoo quant``: every post-training quantization method of :mod:`attnzoo.quant` at 8, 4 and 3 bits on the
real all-MiniLM-L6-v2, against its float32 self, in one table (JSON, markdown, plots).

Rows: round to nearest (weights only, asymmetric per output channel), GPTQ and RSQ (the same weight format,
act-order), W``b``A``b`` uniform with running min-max activation ranges (the protocol of arXiv 2306.12929: symmetric
per-tensor weights, asymmetric per-tensor activations at every linear input), LLM-FP4 (W``b``A``b`` floating point,
searched format and biases, on a CPU budget: 10 bias candidates, one round, 256 tokens per layer against the
official 100 and 3 rounds); at 8 bits also the real int8 kernels (:class:`~attnzoo.quant.Int8Linear`, W8A8
through ``torch._int_mm``) and torchao 0.18's int8 weight-only and dynamic W8A8 configs as anchors, when torchao
imports. Weight-only methods run at 3 bits too; activation quantization at 3 bits is not meaningful here.

Metrics on held-out sentences of *Persuasion* (calibration sentences come from *Pride and Prejudice*): the mean
(and minimum) cosine similarity of each sentence embedding to the float32 one; retrieval agreement, the fraction
of sentences whose nearest neighbour among the other held-out sentences is the float32 model's; the bytes of the
linear weights as stored (packed codes + scales, :func:`~attnzoo.quant.pack`) and of the whole model; the median
latency of embedding one batch. Fake-quantized rows compute in float32 (their latency is the cost of simulated
quantization, not of a low-bit kernel); the int8-kernel and torchao rows run integer kernels.
"""

from __future__ import annotations

import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnzoo.quant import (
    Granularity,
    Int8Linear,
    PackedLinear,
    RunningMinMaxObserver,
    UniformQuantizer,
    pack,
    quantize,
    storage_bytes,
    weight_only,
    weights_and_activations,
)
from attnzoo.quant.evaluation.minilm import MiniLM, embed, load_minilm, sentences
from attnzoo.quant.methods import FP4Options, GPTQOptions, gptq, llm_fp4, rsq

WEIGHT_ONLY = ("rtn", "gptq", "rsq")
METHODS = ("rtn", "gptq", "rsq", "uniform-w-a", "llm-fp4", "int8-kernels", "torchao-int8-weight-only",
           "torchao-int8-dynamic")
BITS = {"rtn": (8, 4, 3), "gptq": (8, 4, 3), "rsq": (8, 4, 3), "uniform-w-a": (8, 4), "llm-fp4": (8, 4),
        "int8-kernels": (8,), "torchao-int8-weight-only": (8,), "torchao-int8-dynamic": (8,)}


@dataclass(frozen=True)
class ReportConfig:
    """What the report runs (``quick()``: a smoke test on the first block)."""

    calibration_sentences: int = 64
    eval_sentences: int = 256
    batch_size: int = 16
    latency_batch: int = 32
    repeats: int = 5
    pattern: str = "*"
    methods: tuple[str, ...] = METHODS
    bits: tuple[int, ...] = (8, 4, 3)
    fp4_candidates: int = 10  # the official search: 100 candidates, 3 rounds (a CPU budget here)
    fp4_rounds: int = 1
    fp4_tokens: int = 256
    quick: bool = False

    @classmethod
    def quick_config(cls, **kwargs: Any) -> ReportConfig:  # noqa: ANN401
        options = dict(calibration_sentences=8, eval_sentences=24, batch_size=8, latency_batch=8, repeats=1,
                       pattern="encoder.layer.0.*", bits=(4,), fp4_candidates=4, fp4_rounds=1, fp4_tokens=128,
                       methods=("rtn", "gptq", "rsq", "uniform-w-a", "llm-fp4"), quick=True)
        options.update(kwargs)
        return cls(**options)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods {unknown}: expected some of {list(METHODS)}")
        bad = [b for b in self.bits if b not in (8, 4, 3)]
        if bad or not self.bits:
            raise ValueError(f"bits={self.bits}: expected some of 8, 4, 3")


def weight_format(bits: int) -> UniformQuantizer:
    return UniformQuantizer(bits, symmetric=False, granularity=Granularity.per_row())


def _int8_kernels(model: nn.Module) -> nn.Module:
    q = copy.deepcopy(model)
    for name, module in list(q.named_modules()):
        if isinstance(module, nn.Linear):
            parent, _, child = name.rpartition(".")
            setattr(q.get_submodule(parent), child, Int8Linear.from_linear(module))
    return q


def _torchao(model: nn.Module, dynamic: bool) -> nn.Module:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    q = copy.deepcopy(model)
    quantize_(q, Int8DynamicActivationInt8WeightConfig() if dynamic else Int8WeightOnlyConfig())
    return q


def build(method: str, bits: int, model: nn.Module, calibration: list[dict[str, torch.Tensor]],
          config: ReportConfig) -> nn.Module:
    """The quantized copy of ``model`` for one row."""
    if method == "rtn":
        return quantize(model, weight_only(weight_format(bits), pattern=config.pattern))
    if method in ("gptq", "rsq"):
        recipe = weight_only(weight_format(bits), pattern=config.pattern)
        fn = gptq if method == "gptq" else rsq
        return fn(model, recipe, calibration, options=GPTQOptions(act_order=True))
    if method == "uniform-w-a":
        recipe = weights_and_activations(UniformQuantizer(bits), UniformQuantizer(bits, symmetric=False),
                                         RunningMinMaxObserver(), pattern=config.pattern)
        return quantize(model, recipe, calibration)
    if method == "llm-fp4":
        options = FP4Options(bits=bits, candidates=config.fp4_candidates, rounds=config.fp4_rounds,
                             max_tokens=config.fp4_tokens, exponent_bits=(2, 3, 4) if bits == 8 else None)
        return llm_fp4(model, calibration, options=options, pattern=config.pattern)
    if method == "int8-kernels":
        return _int8_kernels(model)
    if method.startswith("torchao"):
        return _torchao(model, dynamic=method.endswith("dynamic"))
    raise ValueError(f"method={method!r}: expected one of {list(METHODS)}")


def linear_bytes(model: nn.Module) -> int:
    """Bytes of the linear layers' weights as stored (packed codes and parameters; float weights as they are)."""
    total = 0
    for m in model.modules():
        if isinstance(m, PackedLinear):
            total += m.nbytes()["codes"] + m.nbytes()["params"]
        elif isinstance(m, Int8Linear):
            total += m.codes.numel() + m.scale.numel() * m.scale.element_size()
        elif isinstance(m, nn.Linear):
            w = m.weight
            inner = getattr(w, "tensor_impl", None) or getattr(w, "original_weight_tensor", None)
            if inner is not None or type(w).__name__ != "Parameter":  # a torchao tensor subclass
                total += sum(t.numel() * t.element_size() for t in _subclass_tensors(w))
            else:
                total += w.numel() * w.element_size()
    return total


def _subclass_tensors(w: torch.Tensor) -> list[torch.Tensor]:
    names, _ = w.__tensor_flatten__() if hasattr(w, "__tensor_flatten__") else ([], None)
    out = []
    for name in names:
        t = getattr(w, name)
        out.extend(_subclass_tensors(t) if hasattr(t, "__tensor_flatten__") else [t])
    return out or [w]


def _stored(model: nn.Module) -> nn.Module:
    try:
        return pack(model)
    except ValueError:  # no weight-quantized QuantLinear (float or kernel rows)
        return model


def _latency(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int) -> float:
    embed(model, batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        embed(model, batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _neighbours(e: torch.Tensor) -> torch.Tensor:
    sims = e @ e.t()
    sims.fill_diagonal_(-2.0)
    return sims.argmax(dim=1)


def measure(model: nn.Module, batches: list[dict[str, torch.Tensor]], reference: torch.Tensor,
            latency_batch: dict[str, torch.Tensor], repeats: int) -> dict[str, float]:
    e = torch.cat([embed(model, b) for b in batches])
    cos = (e * reference).sum(dim=1)
    stored = _stored(model)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "retrieval_agreement": float((_neighbours(e) == _neighbours(reference)).float().mean()),
            "linear_weight_bytes": linear_bytes(stored), "model_bytes": storage_bytes(stored)["total"],
            "latency_ms": _latency(model, latency_batch, repeats)}


@dataclass
class Report:
    config: ReportConfig
    rows: list[dict[str, Any]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    seconds: float = 0.0


def _data(minilm: MiniLM, config: ReportConfig) -> tuple[list[dict], list[dict], dict]:
    from attnzoo.data.austen import load_austen_novels

    novels = load_austen_novels()
    calib = sentences(novels["Pride & Prejudice"], config.calibration_sentences)
    held = sentences(novels["Persuasion"], config.eval_sentences)
    size = config.batch_size
    calibration = [minilm.batch(calib[i:i + size]) for i in range(0, len(calib), size)]
    evaluation = [minilm.batch(held[i:i + size]) for i in range(0, len(held), size)]
    return calibration, evaluation, minilm.batch(held[:config.latency_batch])


def run_report(config: ReportConfig, *, progress: bool = True, command: str = "",
               on_row: Callable[[Report], None] | None = None) -> Report:
    """Run every row of ``config`` (see the module docstring); ``on_row(report)`` after each row (the CLI writes
    the partial report there, so a long run that is stopped keeps its rows)."""
    start = time.perf_counter()
    minilm = load_minilm()
    calibration, evaluation, latency_batch = _data(minilm, config)
    reference = torch.cat([embed(minilm.model, b) for b in evaluation])
    report = Report(config, command=command, machine={
        "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version()})
    fp32 = measure(minilm.model, evaluation, reference, latency_batch, config.repeats)
    report.rows.append({"method": "fp32", "bits": 32, "seconds": 0.0, **fp32})
    jobs = [(m, b) for m in config.methods for b in BITS[m] if b in config.bits]
    try:
        from tqdm.auto import tqdm
        bar = tqdm(jobs, desc="attnzoo quant", disable=not progress, dynamic_ncols=True)
    except ImportError:
        bar = jobs
    for method, bits in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{method} {bits}-bit")
        t = time.perf_counter()
        try:
            q = build(method, bits, minilm.model, calibration, config)
        except ImportError as error:  # an optional anchor that is not installed
            report.rows.append({"method": method, "bits": bits, "skipped": f"{type(error).__name__}: {error}"})
            continue
        built = time.perf_counter() - t
        report.rows.append({"method": method, "bits": bits, "seconds": built,
                            **measure(q, evaluation, reference, latency_batch, config.repeats)})
        report.seconds = time.perf_counter() - start
        if on_row is not None:
            on_row(report)
    report.seconds = time.perf_counter() - start
    return report


def markdown(report: Report) -> str:
    c = report.config
    lines = [f"# attnzoo quant: all-MiniLM-L6-v2{' (quick)' if c.quick else ''}", "",
             f"`{report.command}` — {report.seconds:.0f} s on {report.machine.get('processor')} "
             f"({report.machine.get('threads')} threads, torch {report.machine.get('torch')}); layers `{c.pattern}`; "
             f"{c.calibration_sentences} calibration sentences (Pride and Prejudice), {c.eval_sentences} held-out "
             f"(Persuasion). Fake-quantized rows compute in float32: their latency is simulated quantization.", "",
             "| method | bits | cosine to fp32 (mean) | cosine (min) | top-1 retrieval agreement | linear weight MB "
             "| model MB | latency ms | quantize s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        if "skipped" in r:
            lines.append(f"| {r['method']} | {r['bits']} | skipped: {r['skipped']} | | | | | | |")
            continue
        lines.append(f"| {r['method']} | {r['bits']} | {r['cosine_mean']:.4f} | {r['cosine_min']:.4f} | "
                     f"{r['retrieval_agreement']:.3f} | {r['linear_weight_bytes'] / 1e6:.2f} | "
                     f"{r['model_bytes'] / 1e6:.2f} | {r['latency_ms']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(report: Report, out: Path) -> list[Path]:
    """``quality_vs_bits.png`` and ``quality_vs_bytes.png`` (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if "skipped" not in r]
    paths = []
    for key, label, name in (("bits", "bits", "quality_vs_bits.png"),
                             ("linear_weight_bytes", "linear weight bytes (MB)", "quality_vs_bytes.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r[key])
            xs = [r[key] / (1e6 if key != "bits" else 1) for r in mine]
            ax.plot(xs, [r["cosine_mean"] for r in mine], "o-", label=method)
        ax.set_xlabel(label)
        ax.set_ylabel("mean cosine to fp32 embeddings")
        ax.set_title("all-MiniLM-L6-v2 post-training quantization")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    return paths


def write(report: Report, out: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """``quant.json``, ``quant.md`` and the plots into ``out`` (the plots need matplotlib: without it they are
    left out, and ``log`` says so)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"command": report.command, "seconds": report.seconds, "machine": report.machine,
            "config": asdict(report.config), "rows": report.rows}
    (out / "quant.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "quant.md").write_text(markdown(report))
    paths = [out / "quant.json", out / "quant.md"]
    try:
        paths += plot(report, out)
    except ImportError as error:
        log(f"plots left out ({error}): pip install matplotlib")
    return paths
