#!/usr/bin/env bash
# One endpoint with two production variants on $INSTANCE_TYPE: INT8 and FP32 (clients pick one
# with --target-variant; traffic without it is split by weight). Waits until it is in service.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
need BUCKET
need ROLE_ARN
image=$(image_uri)
for variant in int8 fp32; do
  run aws sagemaker create-model --region "$AWS_REGION" \
    --model-name "$ENDPOINT_NAME-$variant" \
    --execution-role-arn "$ROLE_ARN" \
    --primary-container "Image=$image,ModelDataUrl=$(model_data_url "$variant"),Environment={SAGEMAKER_CONTAINER_LOG_LEVEL=20}"
done
variants="VariantName=INT8,ModelName=$ENDPOINT_NAME-int8,InstanceType=$INSTANCE_TYPE,InitialInstanceCount=$INSTANCE_COUNT,InitialVariantWeight=1"
variants+=" VariantName=FP32,ModelName=$ENDPOINT_NAME-fp32,InstanceType=$INSTANCE_TYPE,InitialInstanceCount=$INSTANCE_COUNT,InitialVariantWeight=0"
# shellcheck disable=SC2086 # two variant specs, split on purpose
run aws sagemaker create-endpoint-config --region "$AWS_REGION" \
  --endpoint-config-name "$ENDPOINT_NAME-config" \
  --production-variants $variants
run aws sagemaker create-endpoint --region "$AWS_REGION" \
  --endpoint-name "$ENDPOINT_NAME" --endpoint-config-name "$ENDPOINT_NAME-config"
run aws sagemaker wait endpoint-in-service --region "$AWS_REGION" --endpoint-name "$ENDPOINT_NAME"
