#!/usr/bin/env bash
# Batch Transform over a JSON Lines file of questions ({"question": ..., "context": ...} per
# line) already in S3: answers land beside it, one JSON line per question.
# Usage: batch-transform.sh s3://bucket/in/questions.jsonl s3://bucket/out/ [int8|fp32]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
if [ $# -lt 2 ]; then
  echo "usage: $0 S3_INPUT S3_OUTPUT_PREFIX [int8|fp32]" >&2
  exit 2
fi
input=$1
output=$2
variant=${3:-int8}
job="$ENDPOINT_NAME-batch-$(date +%Y%m%d-%H%M%S)"
run aws sagemaker create-transform-job --region "$AWS_REGION" \
  --transform-job-name "$job" --model-name "$ENDPOINT_NAME-$variant" \
  --batch-strategy MultiRecord --max-payload-in-mb 6 --max-concurrent-transforms 1 \
  --environment SAGEMAKER_BATCH=true \
  --transform-input "DataSource={S3DataSource={S3DataType=S3Prefix,S3Uri=$input}},ContentType=application/jsonlines,SplitType=Line" \
  --transform-output "S3OutputPath=$output,Accept=application/jsonlines,AssembleWith=Line" \
  --transform-resources "InstanceType=$INSTANCE_TYPE,InstanceCount=$INSTANCE_COUNT"
run aws sagemaker wait transform-job-completed-or-stopped --region "$AWS_REGION" --transform-job-name "$job"
