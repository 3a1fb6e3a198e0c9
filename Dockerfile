# One image for the web server, the Celery worker and the embedder (different commands).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DOCDB_DATA_DIR=/data HF_HOME=/models
RUN apt-get update \
    && apt-get install -y --no-install-recommends poppler-utils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY docdb ./docdb
# CPU torch keeps the image small; the GPU override installs the CUDA build instead.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" torch \
    && pip install --no-cache-dir ".[deploy]"
COPY manage.py ./
COPY templates ./templates
COPY static ./static
RUN DOCDB_SECRET_KEY=collectstatic python manage.py collectstatic --noinput
EXPOSE 8000 8011
CMD ["gunicorn", "docdb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
