# The image `zoo-ops submit` runs (README: "Runbooks as Kubernetes Jobs").
#
# Offline build: first, where PyPI is reachable, put every wheel zoo-ops needs in wheels/
#     python3 -m pip wheel --wheel-dir wheels .
# then build with no network:
#     docker build --network=none -t REGISTRY/zoo-ops:VERSION .
FROM python:3.11-slim

WORKDIR /opt/zoo-ops
COPY . /opt/zoo-ops
RUN PIP_OPTIONS="--no-index --find-links /opt/zoo-ops/wheels" sh scripts/install-image.sh \
    && rm -rf /opt/zoo-ops/wheels \
    && useradd --uid 10001 --home-dir /var/lib/zoo-ops --create-home zoo-ops

# The runbooks and trusses travel with the image; the pod's zoo_ops.toml (a ConfigMap)
# names absolute paths for state_dir and truss_root.
ENV ZOO_OPS_RUNBOOKS=/opt/zoo-ops/runbooks
USER 10001
WORKDIR /var/lib/zoo-ops
ENTRYPOINT []
CMD ["zoo-ops", "--help"]
