#!/usr/bin/env bash
# Fetch the offline datasets from the package registries this project can reach
# (Debian apt, PyPI). Idempotent: a step whose outputs exist is skipped.
#
#   bash scripts/fetch-data.sh            # from the repo root
#   DATA_DIR=/elsewhere PY=python3 bash scripts/fetch-data.sh
#
# Outputs (see data/README.md):
#   $DATA_DIR/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
#   $DATA_DIR/rt-polarity/movieReviewSnippets_GroundTruth.txt
#   $DATA_DIR/fixtures/cifar10/cifar10_<i>_<label>.png   (20 images)
#   $DATA_DIR/fixtures/imagenet/imagenet_*               (20 images, for demos)
set -euo pipefail

DATA_DIR="${DATA_DIR:-data}"
PY="${PY:-.venv/bin/python}"
DL="$DATA_DIR/downloads"
mkdir -p "$DL"
DL_ABS="$(cd "$DL" && pwd)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

warn() { echo "WARNING: $*" >&2; }

# ---------------------------------------------------------------- Fashion-MNIST
FM_DIR="$DATA_DIR/fashion-mnist"
FM_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
          t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
FM_SYS="${FASHION_MNIST_SYS_DIR:-/usr/share/datasets/fashion-mnist}"  # where `apt-get install dataset-fashion-mnist` puts them

fm_complete() {  # $1 = dir
    local f
    for f in "${FM_FILES[@]}"; do [ -s "$1/$f" ] || return 1; done
}

fm_apt_download() {  # downloads the .deb into $DL (apt-get download writes to cwd)
    ls "$DL_ABS"/dataset-fashion-mnist_*.deb >/dev/null 2>&1 && return 0
    (cd "$DL_ABS" && apt-get download -qq dataset-fashion-mnist >/dev/null 2>&1) && return 0
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        (cd "$DL_ABS" && apt-get download -qq dataset-fashion-mnist >/dev/null 2>&1) && return 0
    fi
    return 1
}

if fm_complete "$FM_DIR"; then
    echo "fashion-mnist: present in $FM_DIR (skipped)"
elif fm_complete "$FM_SYS"; then
    mkdir -p "$FM_DIR"
    for f in "${FM_FILES[@]}"; do cp "$FM_SYS/$f" "$FM_DIR/"; done
    echo "fashion-mnist: copied from $FM_SYS to $FM_DIR"
elif command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 && fm_apt_download; then
    deb="$(ls "$DL_ABS"/dataset-fashion-mnist_*.deb | head -n1)"
    dpkg-deb -x "$deb" "$TMP/fm"
    src="$(dirname "$(find "$TMP/fm" -name train-images-idx3-ubyte.gz | head -n1)")"
    if fm_complete "$src"; then
        mkdir -p "$FM_DIR"
        for f in "${FM_FILES[@]}"; do cp "$src/$f" "$FM_DIR/"; done
        echo "fashion-mnist: extracted from $(basename "$deb") to $FM_DIR"
    else
        warn "fashion-mnist: $(basename "$deb") lacks the IDX files; the loader will fall back to torchvision's download (needs internet)"
    fi
else
    warn "fashion-mnist: could not get Debian package dataset-fashion-mnist; the loader will fall back to torchvision's download (needs internet)"
fi

# ---------------------------------------------------------------- Rotten Tomatoes
RT_DIR="$DATA_DIR/rt-polarity"
RT_FILE="$RT_DIR/movieReviewSnippets_GroundTruth.txt"
if [ -s "$RT_FILE" ]; then
    echo "rt-polarity: present in $RT_FILE (skipped)"
else
    sdist="$DL/vaderSentiment-3.3.2.tar.gz"
    if [ ! -s "$sdist" ]; then
        "$PY" -m pip download -q --no-deps --no-binary :all: vadersentiment==3.3.2 -d "$DL" ||
            { echo "ERROR: rt-polarity: 'pip download vadersentiment==3.3.2' (source archive) failed; is PyPI reachable?" >&2; exit 1; }
    fi
    sdist="$(ls "$DL"/[vV]ader[sS]entiment-3.3.2.tar.gz | head -n1)"
    tar -xzf "$sdist" -C "$TMP" vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz
    tar -xzf "$TMP/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$TMP" \
        hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt
    mkdir -p "$RT_DIR"
    cp "$TMP/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt" "$RT_FILE"
    echo "rt-polarity: extracted $(grep -c . "$RT_FILE") lines from $(basename "$sdist") to $RT_FILE"
fi

# ---------------------------------------------------------------- foolbox fixtures
FX_C="$DATA_DIR/fixtures/cifar10"
FX_I="$DATA_DIR/fixtures/imagenet"
count() { local n=0 f; for f in "$@"; do [ -e "$f" ] && n=$((n + 1)); done; echo "$n"; }
n_c=$(count "$FX_C"/cifar10_*.png)
n_i=$(count "$FX_I"/imagenet_*)
if [ "$n_c" -ge 20 ] && [ "$n_i" -ge 20 ]; then
    echo "cifar10 fixture: present in $FX_C and $FX_I (skipped)"
else
    whl="$DL/foolbox-3.3.4-py3-none-any.whl"
    if [ ! -s "$whl" ]; then
        "$PY" -m pip download -q --no-deps foolbox==3.3.4 -d "$DL" ||
            { echo "ERROR: cifar10 fixture: 'pip download foolbox==3.3.4' failed; is PyPI reachable?" >&2; exit 1; }
    fi
    whl="$(ls "$DL"/foolbox-3.3.4-*.whl | head -n1)"
    mkdir -p "$FX_C" "$FX_I"
    unzip -q -o -j "$whl" 'foolbox/data/cifar10_*.png' -d "$FX_C"
    unzip -q -o -j "$whl" 'foolbox/data/imagenet_*' -d "$FX_I"
    echo "cifar10 fixture: $(count "$FX_C"/cifar10_*.png) CIFAR-10 + $(count "$FX_I"/imagenet_*) ImageNet images from $(basename "$whl")"
fi
