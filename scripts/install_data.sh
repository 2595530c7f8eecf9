#!/usr/bin/env bash
# Install the offline datasets attnzoo.data reads; idempotent, one line per dataset on success.
#   Fashion-MNIST: apt package dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist (or $ATTNZOO_FASHION_MNIST
#                  if that already holds the files).
#   Jane Austen:   the .deb of r-cran-janeaustenr (an R data package; R is not needed), extracted with dpkg-deb to
#                  ${ATTNZOO_DATA_DIR:-~/.cache/attnzoo}/janeaustenr.
# Runs apt-get as root, through sudo when not root; `apt-get update` runs only when a package has no install
# candidate or an apt-get command fails on stale package lists.
set -euo pipefail

DEBIAN_FASHION_DIR=/usr/share/datasets/fashion-mnist
FASHION_DIR=${ATTNZOO_FASHION_MNIST:-$DEBIAN_FASHION_DIR}
AUSTEN_DIR=${ATTNZOO_DATA_DIR:-$HOME/.cache/attnzoo}/janeaustenr
AUSTEN_DB=$AUSTEN_DIR/usr/lib/R/site-library/janeaustenr/data/Rdata

as_root() {  # run "$@" as root
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "install_data.sh: '$*' needs root, and this is not root and has no sudo" >&2
        exit 1
    fi
}

with_fresh_lists() {  # refresh the package lists when $1 has no install candidate, and once more if "${@:2}" fails
    if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; then
        as_root apt-get update -qq
    fi
    "${@:2}" || { as_root apt-get update -qq && "${@:2}"; }
}

fashion_files_present() {
    local split kind
    for split in train t10k; do
        for kind in images-idx3 labels-idx1; do
            [[ -f $FASHION_DIR/$split-$kind-ubyte.gz ]] || return 1
        done
    done
}

if fashion_files_present; then
    echo "fashion-mnist: present in $FASHION_DIR"
elif [[ $FASHION_DIR != "$DEBIAN_FASHION_DIR" ]]; then
    echo "install_data.sh: ATTNZOO_FASHION_MNIST=$FASHION_DIR lacks the Fashion-MNIST *-ubyte.gz files;" \
         "unset it to install the Debian package to $DEBIAN_FASHION_DIR" >&2
    exit 1
else
    with_fresh_lists dataset-fashion-mnist \
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dataset-fashion-mnist >/dev/null
    fashion_files_present || { echo "install_data.sh: dataset-fashion-mnist installed no files in $FASHION_DIR" >&2
                               exit 1; }
    echo "fashion-mnist: installed dataset-fashion-mnist to $FASHION_DIR"
fi

if [[ -f $AUSTEN_DB.rdx && -f $AUSTEN_DB.rdb ]]; then
    echo "janeaustenr: present in $AUSTEN_DIR"
else
    mkdir -p "$(dirname "$AUSTEN_DIR")"
    tmp=$(mktemp -d)
    # Extracted next to the target, then moved into place: an interrupted run never leaves a partial corpus.
    staging=$(mktemp -d "$AUSTEN_DIR.partial.XXXXXX")
    trap 'rm -rf "$tmp" "$staging"' EXIT
    # apt's sandbox user _apt must be able to write the download folder, or apt warns and downloads as root.
    if [[ $EUID -eq 0 ]] && id -u _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
    (cd "$tmp" && with_fresh_lists r-cran-janeaustenr apt-get download -qq r-cran-janeaustenr)
    dpkg-deb -x "$tmp"/r-cran-janeaustenr_*.deb "$staging"
    rm -rf "$AUSTEN_DIR"
    mv "$staging" "$AUSTEN_DIR"
    echo "janeaustenr: extracted r-cran-janeaustenr to $AUSTEN_DIR"
fi
