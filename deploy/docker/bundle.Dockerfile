# syntax=docker/dockerfile:1.7
# A model bundle as a tiny, data-only image, for the Kubernetes init container that copies it
# into the serving pod (deploy/k8s/base/deployment.yaml). A new model version is a new tag of
# this image and a rollout; the serving image stays the same.
#
#   s2s export ... --out artifacts/bundles          (writes artifacts/bundles/<name>/<version>/)
#   docker build -f deploy/docker/bundle.Dockerfile -t s2s-bundle-dates:2 artifacts/bundles
#
# Expected size: busybox (~4 MB) plus the bundle (a few MB for the shipped RNN models).
FROM busybox:1.37.0
# Everything under the build context: one or more <name>/<version>/ trees.
COPY --chown=10001:10001 . /bundles/
USER 10001:10001
# Copies into the shared volume mounted at /models; the server reads S2S_BUNDLE=/models.
ENTRYPOINT ["cp", "-R", "/bundles/.", "/models/"]
