#!/usr/bin/env bash
# Deletes what the other scripts created (scaling, endpoint, config, models); the image and the
# model tarballs stay. Missing pieces are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
quiet() { run "$@" || echo "  (skipped: not found)"; }
for variant in INT8 FP32; do
  resource="endpoint/$ENDPOINT_NAME/variant/$variant"
  quiet aws application-autoscaling deregister-scalable-target --region "$AWS_REGION" \
    --service-namespace sagemaker --resource-id "$resource" \
    --scalable-dimension sagemaker:variant:DesiredInstanceCount
done
quiet aws sagemaker delete-endpoint --region "$AWS_REGION" --endpoint-name "$ENDPOINT_NAME"
quiet aws sagemaker delete-endpoint-config --region "$AWS_REGION" --endpoint-config-name "$ENDPOINT_NAME-config"
for variant in int8 fp32; do
  quiet aws sagemaker delete-model --region "$AWS_REGION" --model-name "$ENDPOINT_NAME-$variant"
done
