"""Commands of the web app: ``sipscope ui`` and ``sipscope users add|token|list|remove``."""

from __future__ import annotations

import getpass
import sys

from sipscope.settings import get_settings


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _cmd_ui(args) -> int:
    import uvicorn

    from indexers.web.app import create_app
    from indexers.web.explain import ExplanationsError

    settings = get_settings()
    try:
        host, port = parse_listen(args.listen or settings.web.listen)
        app = create_app(settings)
    except (ValueError, ExplanationsError, OSError) as exc:
        print(f"sipscope ui: error: {exc}", file=sys.stderr)
        return 2
    if not app.state.ctx.users.names():
        print("sipscope ui: no users yet: create one with `sipscope users add NAME`", file=sys.stderr)
    if host not in ("127.0.0.1", "::1", "localhost") and not settings.web.cookie_secure:
        print("sipscope ui: warning: listening beyond loopback without SIPSCOPE_WEB__COOKIE_SECURE=true: "
              "serve it behind https", file=sys.stderr)
    print(f"sipscope ui: http://{'[' + host + ']' if ':' in host else host}:{port}/", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
    return 0


def _password(args, name: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _cmd_users(args) -> int:
    from indexers.web.auth import AuthError, UserStore

    store = UserStore(get_settings().web.users_file)
    try:
        if args.action == "list":
            for name in store.names():
                print(name)
            return 0
        if not args.name:
            raise AuthError(f"`sipscope users {args.action}` needs a user NAME")
        if args.action == "add":
            store.add(args.name, _password(args, args.name), replace=args.replace)
            print(f"sipscope users: {'password set for' if args.replace else 'added'} {args.name} ({store.path})",
                  file=sys.stderr)
        elif args.action == "token":
            print(store.add_token(args.name, args.label or ""))
            print("sipscope users: new API token printed above (shown once; send it as "
                  "'Authorization: Bearer <token>')", file=sys.stderr)
        elif args.action == "remove":
            store.remove(args.name)
            print(f"sipscope users: removed {args.name}", file=sys.stderr)
    except (AuthError, ValueError, OSError) as exc:
        print(f"sipscope users: error: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("sipscope users: cancelled", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("ui", help="serve the trace web app (default http://127.0.0.1:8080/)")
    p.add_argument("--listen", metavar="ADDR:PORT", help="bind address (default SIPSCOPE_WEB__LISTEN, 127.0.0.1:8080)")
    p.set_defaults(func=_cmd_ui)

    p = sub.add_parser("users", help="local users of the web app: add, token, list, remove",
                       description="Users live in SIPSCOPE_WEB__USERS_FILE (scrypt password hashes, SHA-256 of "
                                   "API tokens). A running app sees changes at once.")
    p.add_argument("action", choices=["add", "token", "list", "remove"])
    p.add_argument("name", nargs="?", help="user name")
    p.add_argument("--password-stdin", action="store_true", help="add: read the password from the first line of stdin")
    p.add_argument("--replace", action="store_true", help="add: set a new password for an existing user (ends its sessions)")
    p.add_argument("--label", help="token: a note stored with the token (e.g. the script using it)")
    p.set_defaults(func=_cmd_users)
