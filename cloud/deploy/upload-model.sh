#!/usr/bin/env bash
# Packs a model directory as model.tar.gz (what SageMaker's ModelDataUrl needs) and uploads it.
# Usage: upload-model.sh MODEL_DIR int8|fp32
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
if [ $# -ne 2 ] || { [ "$2" != int8 ] && [ "$2" != fp32 ]; }; then
  echo "usage: $0 MODEL_DIR int8|fp32" >&2
  exit 2
fi
dir=$1
variant=$2
need BUCKET
if [ "$DRY_RUN" != 1 ] && [ ! -f "$dir/config.json" ]; then
  echo "error: $dir is not a model directory (no config.json)" >&2
  exit 2
fi
tarball=$(mktemp -d)/model.tar.gz
run tar -czf "$tarball" -C "$dir" .
run aws s3 cp "$tarball" "$(model_data_url "$variant")" --region "$AWS_REGION"
