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
# gevent is optional: only CITYCODE_WORKER_CLASS=gevent uses it (app/serving/options.py); it is
# installed so that the image can switch to it without a rebuild.
RUN pip install -r /tmp/requirements.txt "gevent>=24.10.1,<27"

COPY app ./app
COPY scanners ./scanners
COPY loadtest ./loadtest
COPY wsgi.py ./
RUN pip install --no-deps .

# Slow clients (issue #9): buffered gthread workers (threads see only complete requests), a
# request head must arrive within CITYCODE_HEADER_TIMEOUT s and a body within
# CITYCODE_BODY_TIMEOUT s; each worker holds up to CITYCODE_WORKER_CONNECTIONS connections,
# capped by the open-file limit, whose soft value the master raises to the hard one (raise that
# with `docker run --ulimit nofile=65536:65536`).
ENV CITYCODE_WORKER_CLASS=buffered \
    CITYCODE_HEADER_TIMEOUT=10 \
    CITYCODE_BODY_TIMEOUT=30

USER citycode
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz/ready', timeout=2).status == 200 else 1)"]

CMD ["gunicorn", "-c", "python:app.serving.gunicorn_conf", "wsgi:app"]
