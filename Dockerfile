# Minimal image for the telephony core (a later issue hardens it: read-only root, healthcheck, models).
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tomsip
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tomsip ./tomsip
COPY dialplans ./dialplans
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER tomsip
# SIP (UDP+TCP), SIP TLS, HTTP; RTP uses TOMSIP_RTP_PORTS (publish that range too, as UDP).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp
ENV TOMSIP_HTTP_HOST=0.0.0.0 \
    TOMSIP_DIALPLANS=/app/dialplans
CMD ["tomsip", "serve"]
