"""Command line shared by the Events API client drivers.

    <driver>.py --base-url URL --routing-key KEY [--ca-file PEM] ACTION [options]

ACTION is `trigger`, `acknowledge`, `resolve` or `change`. The result is one JSON object on
stdout: `{"dedup_key": ...}` for the event actions, `{"change": ...}` for a change event.
When the server answers with an error the driver prints the status and body on stderr and
exits with status 2.
"""

import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--routing-key", required=True)
    parser.add_argument("--ca-file", help="PEM file of the CA that signed the server certificate")
    actions = parser.add_subparsers(dest="action", required=True)

    trigger = actions.add_parser("trigger")
    trigger.add_argument("--summary", required=True)
    trigger.add_argument("--source", required=True)
    trigger.add_argument("--severity", default="critical")
    trigger.add_argument("--dedup-key")
    trigger.add_argument("--custom-details", type=json.loads, help="a JSON object")
    trigger.add_argument("--links", type=json.loads, help="a JSON array of {href, text}")

    for name in ("acknowledge", "resolve"):
        actions.add_parser(name).add_argument("--dedup-key", required=True)

    change = actions.add_parser("change")
    change.add_argument("--summary", required=True)
    change.add_argument("--source")
    change.add_argument("--timestamp")
    change.add_argument("--custom-details", type=json.loads, help="a JSON object")
    change.add_argument("--links", type=json.loads, help="a JSON array of {href, text}")
    return parser.parse_args(argv)


def emit(result):
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def request_body(request):
    """The body of an httpx2 request (`content`) or of a requests one (`body`), as text."""
    body = getattr(request, "content", None)
    if body is None:
        body = getattr(request, "body", None) or b""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def fail_with_response(error):
    """Reports a client exception, with the request and response when there was one; exits 2."""
    report = {"error": f"{type(error).__name__}: {error}"}
    response = getattr(error, "response", None)
    if response is not None:
        request = response.request
        report["request"] = {
            "method": request.method,
            "url": str(request.url),
            "headers": {k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            "body": request_body(request),
        }
        report["status"] = response.status_code
        report["body"] = response.text
    json.dump(report, sys.stderr, indent=2)
    sys.stderr.write("\n")
    sys.exit(2)
