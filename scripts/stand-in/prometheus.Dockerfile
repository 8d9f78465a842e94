# Stand-in for docker.io/prom/prometheus where no registry is reachable (scripts/stand_in_bases.sh):
# Debian's Prometheus 2.42 on the Debian Python stand-in, laid out like the official image (binary
# as the entrypoint, config in /etc/prometheus, data in /prometheus, user nobody) so that
# deploy/compose/docker-compose.yml runs it unchanged. wget: the compose health check's client.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# Debian's packages follow the stand-in's snapshot of bookworm.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* /etc/prometheus/* \
 && mkdir -p /prometheus \
 && chown nobody:nogroup /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
