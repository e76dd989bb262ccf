# The operator image for people with Docker: `docker build -t ghcr.io/agentfleet/operator:0.1.0 .`
#
# `make image` (image/build.py) builds the same image without a Docker engine: Debian 12's
# python3.11 with no shell, package manager or pip; /opt/agentfleet, a virtualenv holding
# exactly the wheels of requirements/operator.txt (hash-checked) and the agentfleet wheel;
# user 65532; `agentfleet run`. tests/image/test_dockerfile.py keeps the two in step. The one
# difference is the base: here distroless' python3-debian12 (the same Debian python3.11, plus
# ca-certificates, tzdata and netbase), there the Debian packages themselves, via mmdebstrap.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
# pip lives in its own virtualenv and installs into /opt/agentfleet, which never gets pip.
RUN python3.11 -m venv /pip && python3.11 -m venv --without-pip /opt/agentfleet
COPY requirements/operator.txt /src/requirements/operator.txt
RUN /pip/bin/pip --python /opt/agentfleet/bin/python install --no-cache-dir --no-deps \
      --require-hashes --only-binary=:all: -r /src/requirements/operator.txt
COPY pyproject.toml README.md /src/
COPY operator/agentfleet /src/operator/agentfleet
RUN /pip/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src \
 && /pip/bin/pip --python /opt/agentfleet/bin/python install --no-cache-dir --no-deps /wheels/agentfleet-*.whl \
 && /pip/bin/pip --python /opt/agentfleet/bin/python check

FROM gcr.io/distroless/python3-debian12:nonroot
COPY --from=build /opt/agentfleet /opt/agentfleet
ENV PATH=/opt/agentfleet/bin:/usr/local/bin:/usr/bin:/bin PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["agentfleet"]
CMD ["run"]
