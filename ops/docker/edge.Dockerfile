# FreshMesh store edge box image: one store's till lanes, devices, store database and sync. Build from the
# repository root:
#   docker build -f ops/docker/edge.Dockerfile -t freshmesh-edge .
# Run with the box configuration `freshmesh deploy nats-config` wrote (boxes/<store>.box.json) mounted at
# /etc/freshmesh/edge.json and a volume on /var/lib/freshmesh/edge (the store database: the record of the store's
# sales until the cloud has them). Serial devices: --device /dev/ttyUSB0 and the `devices` config key.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY actors ./actors
COPY cloud ./cloud
COPY edge ./edge
COPY simulators ./simulators
COPY loadtest ./loadtest
COPY logfmt ./logfmt
RUN python -m venv /opt/freshmesh \
    && /opt/freshmesh/bin/pip install --no-cache-dir /src

FROM python:3.11-slim
# the dialout group opens serial scales, scanners and printers
RUN groupadd --system --gid 10001 freshmesh \
    && useradd --system --uid 10001 --gid freshmesh --groups dialout --home-dir /var/lib/freshmesh --create-home \
       --shell /usr/sbin/nologin freshmesh \
    && install -d -o freshmesh -g freshmesh -m 0700 /var/lib/freshmesh/edge
COPY --from=build /opt/freshmesh /opt/freshmesh
ENV PATH=/opt/freshmesh/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FRESHMESH_EDGE_DATA=/var/lib/freshmesh/edge \
    FRESHMESH_EDGE_HOST=0.0.0.0
# numeric, so that Kubernetes runAsNonRoot can check it without reading the image's passwd file
USER 10001:10001
WORKDIR /var/lib/freshmesh
VOLUME ["/var/lib/freshmesh/edge"]
EXPOSE 9000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/health', timeout=4)"]
ENTRYPOINT ["freshmesh"]
CMD ["edge", "--config", "/etc/freshmesh/edge.json"]
