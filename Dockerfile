# nsegaug as a container: `docker run nsegaug generate ...` works like the CLI.
#
#   docker build --network host -t nsegaug .                                   # generate/preview, no torch
#   docker build --network host --build-arg EXTRAS=train -t nsegaug:train .    # + torch, for `nsegaug train`
#
# BASE_IMAGE can be swapped for any Debian-like image with Python >= 3.10
# (scripts/docker-smoke.sh uses a locally built one where no registry is reachable).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# Extras to install ("" for the small image, "train" for training, "train,dask" ...).
ARG EXTRAS=""
# How torch is installed when EXTRAS has "train": a pinned version, a wheel path
# or URL, plus an optional index (e.g. https://download.pytorch.org/whl/cpu).
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    # `docker run --user UID:GID` gives a user with no home; caches and joblib's temp files go here.
    HOME=/tmp

WORKDIR /opt/nsegaug
COPY pyproject.toml README.md LICENSE ./
COPY nsegaug ./nsegaug
RUN python3 -m venv /opt/venv \
    && if echo ",${EXTRAS}," | grep -q ",train,"; then \
         pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"; \
       fi \
    && pip install ".${EXTRAS:+[$EXTRAS]}" \
    && nsegaug --version \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin nsegaug \
    && mkdir -p /data /out && chown nsegaug:nsegaug /out

USER nsegaug
# Data goes in /data (read-only mount) and results in /out by convention.
WORKDIR /data
ENTRYPOINT ["nsegaug"]
CMD ["--help"]
