#!/usr/bin/env bash
# Set up attnzoo on a fresh machine: the pinned CPU torch first (an unpinned torch pulls a multi-GB CUDA build),
# then the package with its test dependencies and every optional extra (".[dev]" includes plot, data and
# progress: matplotlib, rdata, tqdm) and the documentation site's tools (".[docs]"), then the offline data sets
# of the quality tasks (Debian packages,
# scripts/install_data.sh). `--peers` also installs the optional peer libraries the benchmark compares against
# (NATTEN, local-attention, fla-core); they depend on torch, so they go in with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[dev,docs]"   # docs: mkdocs + mkdocstrings for the site (a few seconds)
bash scripts/install_data.sh   # Fashion-MNIST (Debian dataset-fashion-mnist) and the Austen novels (r-cran-janeaustenr)
if [[ "${1:-}" == "--peers" ]]; then
    python3 -m pip install -q --no-deps --no-build-isolation natten==0.21.7
    python3 -m pip install -q --no-deps local-attention==1.11.2 hyper-connections
    python3 -m pip install -q --no-deps fla-core==0.6.0 "einops>=0.7"   # einops: fla's naive reference imports it
fi
