#!/usr/bin/env bash
# Makes a self-signed development certificate for SIP over TLS: one PEM file holding the certificate
# and its private key, which is what TOMSIP_SIP_TLS_CERT takes. Not for production: use a certificate
# from your CA (see the README) there.
#   bash certs/make-dev-cert.sh [out.pem] [common name]
set -euo pipefail
out=${1:-"$(dirname "$0")/dev.pem"}
cn=${2:-localhost}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=$cn" -addext "subjectAltName=DNS:$cn,IP:127.0.0.1" \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" > "$out"
chmod 600 "$out"
echo "wrote $out"
