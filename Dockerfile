# One image for the web server, the Celery worker and the embedder: docker-compose.yml gives
# each its command. CPU torch by default; the GPU override builds it with
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 instead, and torchvision with it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app \
    DOCDB_DEBUG=false \
    DOCDB_DATA_DIR=/data \
    DOCDB_STATIC_ROOT=/app/staticfiles \
    DOCDB_EMBEDDER_CACHE_DIR=/models \
    HF_HOME=/models/huggingface

# poppler-utils renders and reads the PDFs (worker); Tesseract reads scanned pages, with the
# Debian language pack of each Tesseract language in OCR_LANGUAGES (docker compose passes
# DOCDB_OCR_LANGUAGES; chi_sim → tesseract-ocr-chi-sim).
ARG OCR_LANGUAGES=eng
RUN apt-get update \
    && apt-get install -y --no-install-recommends poppler-utils tesseract-ocr \
        $(echo "$OCR_LANGUAGES" | tr ',' '\n' | tr '_' '-' | sed -n 's/^ *\([a-z-]\{3,\}\) *$/tesseract-ocr-\1/p') \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 docdb \
    && mkdir -p /app /data /models \
    && chown docdb:docdb /data /models
WORKDIR /app

# Torch first, from the chosen index only, so pip never swaps in PyPI's multi-GB CUDA build. The
# GPU override sets TORCHVISION=torchvision (the `gpu` extra): from the same index, its build
# matches this torch.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCHVISION=
RUN pip install --index-url "$TORCH_INDEX" torch $TORCHVISION

# The other dependencies in their own layer, installed from pyproject.toml with an empty
# package: a change to DocDB's code then rebuilds in seconds.
COPY pyproject.toml README.md ./
RUN mkdir docdb && touch docdb/__init__.py \
    && pip install ".[deploy]" \
    && pip uninstall -y docdb \
    && rm -rf docdb build *.egg-info

# The code runs from /app (PYTHONPATH), where settings find templates/ and static/.
COPY manage.py ./
COPY docdb ./docdb
COPY templates ./templates
COPY static ./static
# Collected outside the /data volume, so a new image always serves its own files (WhiteNoise).
RUN DOCDB_SECRET_KEY=collectstatic-only DOCDB_DATA_DIR=/tmp/collectstatic \
    python manage.py collectstatic --noinput

USER docdb
EXPOSE 8000 8011
CMD ["gunicorn", "docdb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120", "--access-logfile", "-"]
