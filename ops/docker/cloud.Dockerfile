# FreshMesh cloud image: the HTTP API, the NATS bridge and the Ray actors (the same image runs the KubeRay head and
# workers, whose actors import this code). Build from the repository root:
#   docker build -f ops/docker/cloud.Dockerfile -t freshmesh-cloud .
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
# a non-editable install into its own venv: the runtime stage copies only the venv, not the sources or pip's cache
RUN python -m venv /opt/freshmesh \
    && /opt/freshmesh/bin/pip install --no-cache-dir /src

FROM python:3.11-slim
RUN groupadd --system --gid 10001 freshmesh \
    && useradd --system --uid 10001 --gid freshmesh --home-dir /var/lib/freshmesh --create-home --shell /usr/sbin/nologin freshmesh
COPY --from=build /opt/freshmesh /opt/freshmesh
# FRESHMESH_HOST: inside a container the API must listen beyond loopback to be reachable through its published port
ENV PATH=/opt/freshmesh/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FRESHMESH_HOST=0.0.0.0 \
    XDG_STATE_HOME=/var/lib/freshmesh/state
# numeric, so that Kubernetes runAsNonRoot can check it without reading the image's passwd file
USER 10001:10001
WORKDIR /var/lib/freshmesh
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["freshmesh"]
CMD ["cloud", "--workers", "2"]
