"""Drives PyPI `pdpyras` (EventsAPISession, ChangeEventsAPISession) against a server.

The sessions are pointed at the server through their `url` attribute; nothing else changes.
"""

import pdpyras

from events_cli import emit, fail_with_response, parse_args


def session(cls, args):
    s = cls(args.routing_key)
    s.url = args.base_url
    s.trust_env = False
    if args.ca_file:
        s.verify = args.ca_file
    return s


def main():
    args = parse_args()
    try:
        if args.action == "change":
            changes = session(pdpyras.ChangeEventsAPISession, args)
            emit({"change": changes.submit(
                args.summary,
                source=args.source,
                custom_details=args.custom_details,
                links=args.links,
                timestamp=args.timestamp,
            )})
            return
        events = session(pdpyras.EventsAPISession, args)
        if args.action == "trigger":
            dedup_key = events.trigger(
                args.summary,
                args.source,
                dedup_key=args.dedup_key,
                severity=args.severity,
                custom_details=args.custom_details,
                links=args.links,
            )
            emit({"dedup_key": dedup_key})
        elif args.action == "acknowledge":
            emit({"dedup_key": events.acknowledge(args.dedup_key)})
        elif args.action == "resolve":
            emit({"dedup_key": events.resolve(args.dedup_key)})
    except pdpyras.PDClientError as error:
        fail_with_response(error)


if __name__ == "__main__":
    main()
