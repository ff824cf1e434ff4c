"""Drives the official PyPI `pagerduty` client (EventsApiV2Client) against a server.

Only the base URL changes from the defaults; the client requires it to be https, so the server's
CA is handed to the client's HTTP library (httpx2) through its own `verify` option.
"""

import ssl

import pagerduty

from events_cli import emit, fail_with_response, parse_args


def main():
    args = parse_args()
    options = {"trust_env": False}
    if args.ca_file:
        options["verify"] = ssl.create_default_context(cafile=args.ca_file)
    client = pagerduty.EventsApiV2Client(args.routing_key, base_url=args.base_url, **options)
    try:
        if args.action == "trigger":
            dedup_key = client.trigger(
                args.summary,
                args.source,
                dedup_key=args.dedup_key,
                severity=args.severity,
                custom_details=args.custom_details,
                links=args.links,
            )
            emit({"dedup_key": dedup_key})
        elif args.action == "acknowledge":
            emit({"dedup_key": client.acknowledge(args.dedup_key)})
        elif args.action == "resolve":
            emit({"dedup_key": client.resolve(args.dedup_key)})
        elif args.action == "change":
            payload = {"summary": args.summary}
            if args.source:
                payload["source"] = args.source
            if args.timestamp:
                payload["timestamp"] = args.timestamp
            if args.custom_details:
                payload["custom_details"] = args.custom_details
            client.send_change_event(payload=payload, links=args.links)
            emit({"change": "sent"})
    except pagerduty.Error as error:
        fail_with_response(error)
    finally:
        client.close()


if __name__ == "__main__":
    main()
