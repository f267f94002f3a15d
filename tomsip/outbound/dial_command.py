"""`tomsip dial`: place a call through a running tomsip (POST /api/calls), and with --wait follow it
to its result. A thin client of the HTTP API, so that the CLI and any other program get the same
validation, pacing and admission.

Exit status: 0 queued (or, with --wait, answered); 1 not answered (busy, no answer, rejected, failed,
not placed); 2 refused by the server or a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

POLL_S = 0.5


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    dial: argparse.ArgumentParser = sub.add_parser(
        "dial", help="place an outbound call through a running tomsip", description=__doc__
    )
    dial.add_argument("--to", required=True, help="the number to call")
    dial.add_argument("--dialplan", required=True, help="the dialplan that serves the call (its name)")
    dial.add_argument("--caller-id", help="the number to present (P-Asserted-Identity)")
    dial.add_argument(
        "--context", action="append", default=[], metavar="NAME=VALUE", help="a variable for the responder (repeat)"
    )
    dial.add_argument("--status-url", help="where the server POSTs the result")
    dial.add_argument("--wait", action="store_true", help="follow the call until it has a result, and print it")
    dial.add_argument("--timeout", type=float, default=900.0, help="--wait: give up after this many seconds")
    dial.add_argument(
        "--server",
        default=os.environ.get("TOMSIP_SERVER_URL") or f"http://127.0.0.1:{os.environ.get('TOMSIP_HTTP_PORT', '8080')}",
        help="the tomsip HTTP address [env TOMSIP_SERVER_URL; default http://127.0.0.1:$TOMSIP_HTTP_PORT or 8080]",
    )
    dial.add_argument("--token", default=os.environ.get("TOMSIP_ADMIN_TOKEN"), help="[env TOMSIP_ADMIN_TOKEN]")
    return dial


def _request(url: str, token: str | None, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": exc.reason}


def run(args: argparse.Namespace) -> int:
    context: dict[str, str] = {}
    for item in args.context:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"tomsip dial: --context wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        context[name] = value
    body: dict[str, object] = {"to": args.to, "dialplan": args.dialplan, "context": context}
    if args.caller_id:
        body["caller_id"] = args.caller_id
    if args.status_url:
        body["status_url"] = args.status_url
    base = args.server.rstrip("/")
    try:
        status, answer = _request(f"{base}/api/calls", args.token, body)
    except (OSError, ValueError) as exc:
        print(f"tomsip dial: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    if status != 202:
        print(f"tomsip dial: refused ({status}): {json.dumps(answer)}", file=sys.stderr)
        return 2
    if not args.wait:
        print(json.dumps(answer))
        return 0
    deadline = time.monotonic() + args.timeout
    while answer.get("state") != "done" and time.monotonic() < deadline:
        time.sleep(POLL_S)
        try:
            status, answer = _request(f"{base}/api/calls/{answer['id']}", args.token)
        except (OSError, ValueError) as exc:
            print(f"tomsip dial: lost the server: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(answer))
    return 0 if answer.get("result") == "answered" else 1
