#!/usr/bin/env bash
# Settings shared by the deployment scripts, all from the environment (defaults in brackets).
# Sourced, not run. DRY_RUN=1 prints every AWS/Docker call instead of making it.
set -euo pipefail

: "${AWS_REGION:=us-east-1}"                       # region of ECR, S3 and SageMaker
: "${IMAGE_NAME:=squint}"                          # ECR repository
: "${IMAGE_TAG:=latest}"
: "${BUCKET:=}"                                    # S3 bucket for model.tar.gz (required)
: "${PREFIX:=squint}"                              # key prefix inside the bucket
: "${ROLE_ARN:=}"                                  # SageMaker execution role (required)
: "${ENDPOINT_NAME:=squint-qa}"
: "${INSTANCE_TYPE:=ml.c6i.2xlarge}"
: "${INSTANCE_COUNT:=1}"                           # initial instances per variant
: "${MIN_INSTANCES:=1}"                            # autoscaling bounds per variant
: "${MAX_INSTANCES:=4}"
: "${TARGET_INVOCATIONS:=1000}"                    # invocations per instance per minute to hold
: "${DRY_RUN:=0}"

# Prints a command, then runs it unless DRY_RUN=1.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$DRY_RUN" != 1 ]; then
    "$@"
  fi
}

# Fails with a message when a required setting is empty (placeholders in a dry run).
need() {
  local name=$1
  if [ -z "${!name}" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      printf -v "$name" '%s' "<$name>"
    else
      echo "error: set $name (see cloud/deploy/README.md)" >&2
      exit 2
    fi
  fi
}

account_id() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "123456789012"
  else
    aws sts get-caller-identity --query Account --output text
  fi
}

image_uri() {
  echo "$(account_id).dkr.ecr.${AWS_REGION}.amazonaws.com/${IMAGE_NAME}:${IMAGE_TAG}"
}

# S3 URI of a variant's model.tar.gz (variant: int8 or fp32).
model_data_url() {
  echo "s3://${BUCKET}/${PREFIX}/$1/model.tar.gz"
}
