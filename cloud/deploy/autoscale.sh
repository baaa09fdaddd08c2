#!/usr/bin/env bash
# Scale-out as SageMaker users do it: each variant's instance count becomes an Application Auto
# Scaling target, with a target-tracking policy on invocations per instance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
for variant in INT8 FP32; do
  resource="endpoint/$ENDPOINT_NAME/variant/$variant"
  run aws application-autoscaling register-scalable-target --region "$AWS_REGION" \
    --service-namespace sagemaker --resource-id "$resource" \
    --scalable-dimension sagemaker:variant:DesiredInstanceCount \
    --min-capacity "$MIN_INSTANCES" --max-capacity "$MAX_INSTANCES"
  run aws application-autoscaling put-scaling-policy --region "$AWS_REGION" \
    --service-namespace sagemaker --resource-id "$resource" \
    --scalable-dimension sagemaker:variant:DesiredInstanceCount \
    --policy-name "$ENDPOINT_NAME-$variant-invocations" --policy-type TargetTrackingScaling \
    --target-tracking-scaling-policy-configuration \
    "{\"TargetValue\": $TARGET_INVOCATIONS, \"PredefinedMetricSpecification\": {\"PredefinedMetricType\": \"SageMakerVariantInvocationsPerInstance\"}, \"ScaleInCooldown\": 300, \"ScaleOutCooldown\": 60}"
done
