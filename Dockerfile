# CityCode API image. Not built in CI (no Docker engine there); keep it correct by reading.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CITYCODE_DATA_DIR=/data \
    CITYCODE_BIND=0.0.0.0:8000

RUN groupadd --system citycode && useradd --system --gid citycode --home-dir /srv/citycode citycode \
    && mkdir -p /srv/citycode /data && chown citycode:citycode /data && chmod 0700 /data

WORKDIR /srv/citycode

# Dependencies first, so code changes do not invalidate this layer.
COPY setup.cfg pyproject.toml README.md ./
RUN python - <<'PY' > /tmp/requirements.txt
import configparser
cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
print("\n".join(r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()))
PY
RUN pip install -r /tmp/requirements.txt

COPY app ./app
COPY scanners ./scanners
COPY loadtest ./loadtest
COPY wsgi.py ./
RUN pip install --no-deps .

USER citycode
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz/ready', timeout=2).status == 200 else 1)"]

CMD ["gunicorn", "-c", "python:app.serving.gunicorn_conf", "wsgi:app"]
