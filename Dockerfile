# tomsip, hardened: non-root, runs with a read-only root filesystem (tmpfs for /tmp), no new
# privileges (set in docker-compose.yml), a HEALTHCHECK, and every speech model installed at build
# time inside Python packages (nothing is downloaded at run time).
# Build:  docker build -t tomsip .
# Run:    docker run --read-only --tmpfs /tmp --security-opt no-new-privileges --cap-drop ALL \
#           -p 5060:5060/udp -p 8080:8080 -p 10000-10099:10000-10099/udp tomsip

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tomsip ./tomsip
RUN python -m venv /opt/tomsip \
 && /opt/tomsip/bin/pip install . \
 && find /opt/tomsip -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/tomsip/bin/python -m compileall -q /opt/tomsip/lib

FROM python:3.11-slim-bookworm
# libopus and libsrtp come inside the wheels; nothing else is needed at run time.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tomsip
COPY --from=build /opt/tomsip /opt/tomsip
COPY dialplans /etc/tomsip/dialplans
ENV PATH=/opt/tomsip/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    TOMSIP_DIALPLANS=/etc/tomsip/dialplans \
    TOMSIP_SIP_HOST=0.0.0.0 \
    TOMSIP_HTTP_HOST=0.0.0.0 \
    TOMSIP_RTP_PORTS=10000-10099
USER 10001:10001
# SIP over UDP and TCP, HTTP (health, metrics, browser bridge), RTP (publish the same range, UDP).
EXPOSE 5060/udp 5060/tcp 8080/tcp 10000-10099/udp
# Ready means: the store answers and the node is not draining (GET /healthz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["tomsip", "serve"]
