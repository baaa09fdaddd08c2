#!/usr/bin/env bash
# Builds the container (cloud/Dockerfile) and pushes it to ECR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
repo_root=$(cd "$here/../.." && pwd)
uri=$(image_uri)
registry=${uri%%/*}

if [ "$DRY_RUN" = 1 ] || ! aws ecr describe-repositories --region "$AWS_REGION" --repository-names "$IMAGE_NAME" >/dev/null 2>&1; then
  run aws ecr create-repository --region "$AWS_REGION" --repository-name "$IMAGE_NAME"
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "+ aws ecr get-login-password --region $AWS_REGION | docker login --username AWS --password-stdin $registry"
else
  aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$registry"
fi
run docker build -f "$repo_root/cloud/Dockerfile" -t "$IMAGE_NAME:$IMAGE_TAG" "$repo_root"
run docker tag "$IMAGE_NAME:$IMAGE_TAG" "$uri"
run docker push "$uri"
