# Semantic search service: the serving venv, the seed index and the model exported for ONNX
# Runtime are made in one stage and copied into a slim runtime stage (no torch) that runs as a
# non-root user and needs no network at run time.
#
# Elsewhere:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t semantic-search .
# On a machine without a Docker engine, run scripts/podman-setup.sh once (local base image), then
#   podman --runtime runc build --format docker --network host \
#     -v /etc/ssl/certs:/host-certs:ro -v "$(pip config get global.find-links)":/wheels:ro \
#     --build-arg BASE_IMAGE=localhost/debian-base:bookworm \
#     --build-arg PIP_CERT=/host-certs/ca-certificates.crt --build-arg PIP_FIND_LINKS=/wheels \
#     -t localhost/semantic-search:dev .
# (--format docker keeps the HEALTHCHECK, which podman's default OCI format drops.)
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Unset unless passed: a CA bundle for a TLS proxy, and a folder holding the torch CPU wheel.
ARG PIP_CERT
ARG PIP_FIND_LINKS
# PyTorch's CPU wheel index, so torch comes without CUDA (empty: plain index / find-links).
ARG TORCH_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1
# Official Python images have python3; a bare Debian base gets Debian's (3.11 on bookworm).
RUN command -v python3 >/dev/null || { \
        apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; }
# Two venvs: /opt/tools holds torch and sentence-transformers, to export the model for ONNX
# Runtime and to build the seed index; /opt/venv, the only one the runtime stage gets, serves
# with ONNX Runtime and has no torch (a third of the size). It gets the project's dependencies
# and, from the milvus extra, the client for a Milvus server (SEARCH_STORE=milvus; pymilvus with
# pandas and grpcio, +69 MB), but not Milvus Lite (a local file, for one process; its pyarrow is
# 170 MB): a container talks to a server. No other extra (the eval extra's scipy is 143 MB). The
# venv loses pip, setuptools and the packages' own test suites once everything is installed. It
# keeps the compiled bytecode: the app user could not write it, so every start would compile its
# imports again.
# uv installs the dependencies: ten times faster than pip (2.7 s against 36 s for the serving
# venv's, measured on the host). pip installs torch, from PyTorch's CPU index or the host's wheel
# folder (uv would prefer PyPI's CUDA build).
RUN python3 -m venv /opt/tools && python3 -m venv /opt/venv && /opt/tools/bin/pip install uv

# torch first, CPU only; its own layer since it is big and changes least.
RUN /opt/tools/bin/pip install ${TORCH_INDEX_URL:+--index-url=$TORCH_INDEX_URL} torch==2.13.0

# The dependencies, read from pyproject.toml, so code edits do not reinstall them. uv takes the
# CA bundle pip is given (a TLS proxy), and compiles the serving venv's bytecode as pip would.
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && python3 -c "import tomllib; print(*(r for r in tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['torch'] if not r.startswith('torch=')), sep='\n')" \
        > /tmp/requirements-torch.txt \
    && python3 -c "import re, tomllib; extra = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['milvus']; name = lambda r: re.match(r'[A-Za-z0-9._-]+', r)[0].lower().replace('_', '-'); client = [r for r in extra if name(r) != 'milvus-lite']; assert 'pymilvus' in map(name, client), extra; print(*client, sep=chr(10))" \
        > /tmp/requirements-milvus.txt \
    && export SSL_CERT_FILE=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt} UV_NO_CACHE=1 \
    && /opt/tools/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
        -r /tmp/requirements.txt -r /tmp/requirements-milvus.txt \
    && /opt/tools/bin/uv pip install --python /opt/tools/bin/python \
        -r /tmp/requirements.txt -r /tmp/requirements-torch.txt

# The seed index, and the model exported for ONNX Runtime (the default backend) beside it: they
# need the core and the seeds only, so an edit of app/ (or of the docs) rebuilds neither.
COPY indexer/ indexer/
COPY seeds/ seeds/
RUN /opt/tools/bin/python -m indexer build --source seeds --out /srv/index --onnx-dir /srv/onnx \
        --no-progress \
    && chmod -R a+rX /srv/index /srv/onnx

COPY . .
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools \
    && find /opt/venv/lib -type d -name tests -path '*/site-packages/*/tests' -prune \
        -exec rm -rf {} +

FROM ${BASE_IMAGE} AS runtime
RUN command -v python3 >/dev/null || { \
        apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 \
        && apt-get clean \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; }
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app
# The venv holds the dependencies and the installed app/ and indexer/ packages.
COPY --from=build /opt/venv /opt/venv
# The seed index belongs to the app user, who writes to it (documents written over the API).
# Mount a named volume at /srv/index to keep those writes across containers: Docker and podman
# fill a new, empty named volume with this seed index the first time.
COPY --from=build --chown=10001:10001 /srv/index /srv/index
COPY --from=build /srv/onnx /srv/onnx
# The seed articles, for SEARCH_STORE=milvus: the image's command fills a missing collection from
# them (mount your own at /srv/seeds instead). The FAISS store serves the index built from them.
COPY --from=build /src/seeds /srv/seeds
COPY scripts/container-start.sh /usr/local/bin/search-start
# MALLOC_ARENA_MAX: two malloc arenas from the first allocation on (python -m app also asks
# glibc for two at start, but by then imports have made a few): flat memory under load.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    SEARCH_INDEX_DIR=/srv/index \
    SEARCH_ONNX_DIR=/srv/onnx \
    HOST=0.0.0.0 \
    PORT=8000 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
WORKDIR /home/app
USER 10001:10001
EXPOSE 8000
# /ready answers 200 once the model and index are loaded (503 before); urlopen raises on 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/ready', timeout=4)"
# python -m app; with SEARCH_STORE=milvus, after filling a missing collection from /srv/seeds.
CMD ["search-start"]
