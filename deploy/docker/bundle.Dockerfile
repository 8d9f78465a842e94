# A model bundle as a tiny, data-only image, for the Kubernetes init container that copies it
# into the serving pod (deploy/k8s/base/deployment.yaml) and the compose "bundle" service that
# fills the "bundles" volume. A new model version is a new tag of this image and a rollout; the
# serving image stays the same.
#
#   s2s export ... --out artifacts/bundles          (writes artifacts/bundles/<name>/<version>/)
#   BUNDLES=artifacts/bundles BUNDLE_TAG=dates-2 scripts/build_images.sh bundle
#   docker build -f deploy/docker/bundle.Dockerfile -t s2s-bundle:dates-2 artifacts/bundles
#
# Size: busybox (~2-4 MB) plus the bundles (a few MB for the shipped RNN models).
ARG BUSYBOX_IMAGE=docker.io/library/busybox:1.37.0
FROM ${BUSYBOX_IMAGE}
# Everything under the build context: one or more <name>/<version>/ trees.
COPY --chown=10001:10001 . /bundles/
# /models owned by the copying user: an empty named volume mounted there takes this owner
# (compose); Kubernetes mounts its emptyDir over it with fsGroup instead.
RUN mkdir /models && chown 10001:10001 /models
USER 10001:10001
# Copies into the shared volume mounted at /models; the server reads S2S_BUNDLE=/models.
ENTRYPOINT ["cp", "-R", "/bundles/.", "/models/"]
