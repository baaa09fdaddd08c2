#!/usr/bin/env bash
# Asks the endpoint one question (the reference test client's call), on a chosen variant.
# Usage: invoke.sh "question" "context" [INT8|FP32]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
if [ $# -lt 2 ]; then
  echo "usage: $0 QUESTION CONTEXT [INT8|FP32]" >&2
  exit 2
fi
body=$(python3 -c 'import json,sys; print(json.dumps({"question": sys.argv[1], "context": sys.argv[2]}))' "$1" "$2")
out=$(mktemp)
run aws sagemaker-runtime invoke-endpoint --region "$AWS_REGION" \
  --endpoint-name "$ENDPOINT_NAME" --target-variant "${3:-INT8}" \
  --content-type application/json --accept application/json \
  --custom-attributes "trace-id=$(date +%s%N)" \
  --cli-binary-format raw-in-base64-out --body "$body" "$out"
if [ "$DRY_RUN" != 1 ]; then cat "$out"; echo; fi
