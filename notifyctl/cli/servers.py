"""Long-running commands: the mock sending API (and, later, the daemon and the API)."""

import typer

from notifyctl.cli.context import error, state


def mock(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        metavar="HOST",
        envvar="MOCK_HOST",
        show_envvar=True,
        help="Address to listen on.",
    ),
    port: int = typer.Option(
        8001,
        "--port",
        metavar="PORT",
        min=1,
        max=65535,
        envvar="MOCK_PORT",
        show_envvar=True,
        help="Port to listen on.",
    ),
    secret: str | None = typer.Option(
        None,
        "--secret",
        metavar="SECRET",
        envvar="MOCK_SECRET",
        show_envvar=True,
        help="HS256 secret valid tokens are signed with; when set, the demo token stops working.",
    ),
    latency_ms: float = typer.Option(
        0.0,
        "--latency-ms",
        metavar="MS",
        envvar="MOCK_LATENCY_MS",
        show_envvar=True,
        help="Fixed delay before each answer, e.g. 200.",
    ),
    jitter_ms: float = typer.Option(
        0.0,
        "--jitter-ms",
        metavar="MS",
        envvar="MOCK_JITTER_MS",
        show_envvar=True,
        help="Extra random delay, uniform in 0..N ms.",
    ),
    error_rate: float = typer.Option(
        0.0,
        "--error-rate",
        metavar="SHARE",
        envvar="MOCK_ERROR_RATE",
        show_envvar=True,
        help="Share of requests answered 500/502/503, e.g. 0.1.",
    ),
    garbage_rate: float = typer.Option(
        0.0,
        "--garbage-rate",
        metavar="SHARE",
        envvar="MOCK_GARBAGE_RATE",
        show_envvar=True,
        help="Share answered 200 with a broken or wrong body.",
    ),
    drop_rate: float = typer.Option(
        0.0,
        "--drop-rate",
        metavar="SHARE",
        envvar="MOCK_DROP_RATE",
        show_envvar=True,
        help="Share whose connection is closed without an answer.",
    ),
    rate_limit: float | None = typer.Option(
        None,
        "--rate-limit",
        metavar="PER_SECOND",
        envvar="MOCK_RATE_LIMIT",
        show_envvar=True,
        help="Requests per second above which 429 comes.",
    ),
    retry_after: float | None = typer.Option(
        None,
        "--retry-after",
        metavar="SECONDS",
        envvar="MOCK_RETRY_AFTER",
        show_envvar=True,
        help="Seconds in the Retry-After header of a 429 (default 1).",
    ),
    error_body_bytes: int | None = typer.Option(
        None,
        "--error-body-bytes",
        metavar="BYTES",
        envvar="MOCK_ERROR_BODY_BYTES",
        show_envvar=True,
        help="Pad the bodies of 5xx and 429 answers to this many bytes (a huge answer).",
    ),
    outage_seconds: float | None = typer.Option(
        None,
        "--outage-seconds",
        metavar="SECONDS",
        envvar="MOCK_OUTAGE_SECONDS",
        show_envvar=True,
        help="Refuse everything (503) for this long, from --outage-at or start-up.",
    ),
    outage_at: str | None = typer.Option(
        None,
        "--outage-at",
        metavar="TIME",
        envvar="MOCK_OUTAGE_AT",
        show_envvar=True,
        help="ISO-8601 start of the outage.",
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        metavar="N",
        envvar="MOCK_SEED",
        show_envvar=True,
        help="Seed the fault dice, for repeatable runs.",
    ),
    print_token: bool = typer.Option(
        False, "--print-token", help="Print the demo token (or one signed with --secret) and exit."
    ),
    child: bool = typer.Option(False, "--child", hidden=True),  # of `up`, which says it all
) -> None:
    """Serve the mock external sending API (POST /v1/send/{msgId}) with fault injection.

    Faults change at run time with PUT /v1/_faults; what arrived is at GET /v1/_received.

    Example: notifyctl mock --port 8001 --latency-ms 200 --jitter-ms 100 --error-rate 0.1
    """
    import jwt
    from pydantic import ValidationError

    from mock.auth import DEMO_CLAIMS, DEMO_SECRET
    from mock.faults import Faults
    from mock.server import serve

    _refuse_weak_mock_secret(secret)
    if print_token:
        print(jwt.encode(DEMO_CLAIMS, secret or DEMO_SECRET, algorithm="HS256"))
        return
    given = {
        "latency_ms": latency_ms,
        "jitter_ms": jitter_ms,
        "error_rate": error_rate,
        "garbage_rate": garbage_rate,
        "drop_rate": drop_rate,
        "rate_limit": rate_limit,
        "retry_after": retry_after,
        "error_body_bytes": error_body_bytes,
        "outage_seconds": outage_seconds,
        "outage_at": outage_at,
    }
    try:
        faults = Faults(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        error(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}")
        raise typer.Exit(2) from None
    from notifyctl.cli.launcher import refuse_taken_ports
    from notifyctl.render import info

    refuse_taken_ports({"port": (host, port)})  # before a link to someone else's server
    if not child:
        info(
            f"mock sending API on http://{host}:{port}/v1/send/{{msgId}} "
            f"(docs: http://{host}:{port}/docs/)"
        )
    serve(host=host, port=port, secret=secret or DEMO_SECRET, faults=faults, seed=seed)


def _refuse_weak_mock_secret(secret: str | None) -> None:
    """Exit 2 on a MOCK_SECRET left as the placeholder, or, with NOTIFY_ENV=prod, a weak one.

    The mock reads no other setting (it stands for an outside system): NOTIFY_ENV comes
    from the environment or, as for every process, the .env file.
    """
    import os

    from dotenv import dotenv_values

    from notifyctl.config import DEMO_VALUES, MIN_SECRET_BYTES, PLACEHOLDER, Environment

    env = os.environ.get("NOTIFY_ENV") or dotenv_values(".env").get("NOTIFY_ENV") or ""
    secret = secret.strip() if secret is not None else None
    why = None
    if secret is not None and PLACEHOLDER.search(secret):
        why = "it still holds the placeholder 'change-me'"
    elif env.strip() == Environment.prod:
        if not secret:
            why = "it is unset, so the mock takes its demo token, public in the code"
        elif secret in DEMO_VALUES:
            why = f"it is {DEMO_VALUES[secret]}, public in the code"
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            why = f"it is shorter than {MIN_SECRET_BYTES} bytes"
    if why:
        error(f"MOCK_SECRET (--secret): {why}")
        raise typer.Exit(2)


def daemon(
    ctx: typer.Context,
    burst: bool = typer.Option(
        False, "--burst", help="Send everything due now, then exit (for scripts and cron)."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Health probe (liveness): exit 0 if the database is usable and no daemon on "
        "this host has gone NOTIFY_STALL_SECONDS without progress while messages are due; "
        "else one line on stderr and exit 1.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        metavar="N",
        min=1,
        max=64,
        help="Sender processes, each with NOTIFY_CONCURRENCY in flight: one per spare core "
        "(default NOTIFY_WORKERS, 1).",
    ),
    child: bool = typer.Option(False, "--child", hidden=True),
) -> None:
    """Run the sender: activate mailings at their start, deliver, retry, expire at the end.

    Tunables are settings (NOTIFY_CONCURRENCY, NOTIFY_RATE_LIMIT, NOTIFY_REQUEST_TIMEOUT,
    NOTIFY_MAX_ATTEMPTS, ...; see the README). Prometheus metrics are served on
    NOTIFY_METRICS_PORT (8002; 0 = off). SIGTERM or Ctrl-C drains: no new claims,
    requests in flight finish, the rest is given back. On SQLite one daemon runs at a time;
    on PostgreSQL start as many as you like.

    Example: NOTIFY_CONCURRENCY=500 notifyctl daemon
    """
    from notifyctl.logs import configure_logging

    cli = state(ctx)
    engine = cli.engine  # creates the schema or refuses an old one
    if check:
        from daemon.health import stalled
        from notifyctl.db import current_revision, session_scope
        from notifyctl.services.delivery import due_now
        from notifyctl.timeutil import utcnow

        current_revision(engine)
        problems = stalled(cli.settings.heartbeat_path, stall_seconds=cli.settings.stall_seconds)
        if problems:
            with session_scope(engine) as session:
                due = due_now(session=session, now=utcnow())
            if due:
                error(f"{problems[0]}, while {due} messages are due or in flight")
                raise typer.Exit(1)
        print("ok")
        return
    configure_logging(cli.settings)
    from contextlib import nullcontext

    from daemon.lock import single_sender
    from daemon.signals import stop_on_signals
    from daemon.worker import Worker
    from notifyctl.db import is_sqlite

    processes = workers or cli.settings.workers
    if processes > 1 and not child:
        from daemon.processes import child_environment, run_children
        from daemon.worker import take_over_orphans

        with single_sender(engine):
            if is_sqlite(engine):
                take_over_orphans(engine)
            args = ["daemon", "--child", *(["--burst"] if burst else [])]
            environment = child_environment(
                cli.settings.database_url, cli.settings.metrics_port, cli.settings.heartbeat_path
            )
            code = run_children(processes, args, environment)
        raise typer.Exit(code)

    from daemon.metrics import DaemonMetrics

    metrics = DaemonMetrics()

    async def main() -> None:
        if cli.settings.metrics_port:  # only once this daemon may run (SQLite's lock)
            metrics.serve(cli.settings.metrics_host, cli.settings.metrics_port)
        worker = Worker(
            engine=engine,
            settings=cli.settings,
            burst=burst,
            exclusive=is_sqlite(engine) and not child,
            metrics=metrics,
            heartbeat=cli.settings.heartbeat_path,
        )
        with stop_on_signals(worker.stop):
            counters = await worker.run()
        if worker.failed:
            raise typer.Exit(1)
        if burst:
            from notifyctl.render import info

            info(
                f"sent {counters.sent}, failed {counters.failed}, retrying {counters.retried}, "
                f"expired {counters.expired}, requests {counters.requests}"
            )

    # A child runs under its parent's lock; SQLite serialises the children's writes.
    from daemon.loop import run

    with nullcontext() if child else single_sender(engine):
        run(main())


def up(
    ctx: typer.Context,
    demo: bool = typer.Option(
        False, "--demo", help="First add sample clients and two mailings that start in 5 s."
    ),
    mock_port: int = typer.Option(
        8001, "--mock-port", metavar="PORT", min=1, max=65535, help="Port of the mock sending API."
    ),
    api_port: int = typer.Option(
        8000, "--api-port", metavar="PORT", min=1, max=65535, help="Port of the REST API."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        metavar="PORT",
        envvar="NOTIFY_METRICS_PORT",
        show_envvar=True,
        min=0,
        max=65535,
        help="Port of the daemon's Prometheus metrics (default 8002; 0 = off).",
    ),
) -> None:
    """Start the mock sending API, the daemon and the REST API, and watch the statistics.

    Everything runs on the configured database (by default the local SQLite file). The
    daemon sends to the mock unless NOTIFY_SENDER_URL points elsewhere. Ctrl-C, SIGTERM
    or SIGHUP stops all of them.

    Example: notifyctl up --demo --metrics-port 8002
    """
    from notifyctl.cli.launcher import run_stack

    cli = state(ctx)
    run_stack(
        cli,
        demo=demo,
        mock_port=mock_port,
        api_port=api_port,
        metrics_port=cli.settings.metrics_port if metrics_port is None else metrics_port,
    )


def api(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        metavar="HOST",
        envvar="NOTIFY_API_HOST",
        show_envvar=True,
        help="Address to listen on.",
    ),
    port: int = typer.Option(
        8000,
        "--port",
        metavar="PORT",
        min=1,
        max=65535,
        envvar="NOTIFY_API_PORT",
        show_envvar=True,
        help="Port to listen on.",
    ),
    child: bool = typer.Option(False, "--child", hidden=True),  # of `up`, which says it all
) -> None:
    """Serve the REST API (/api/v1) with Swagger UI at /docs/ and the admin UI at /admin/.

    Makes up a login token on start and prints it (as Jupyter does): the admin UI's login
    link carries it when no OpenID Connect provider is configured, and it works as a
    bearer token; create lasting ones with `notifyctl token create`. NOTIFY_LOGIN_TOKEN
    fixes it instead, and is then never printed; nor is any token with NOTIFY_ENV=prod.

    Example: notifyctl api --host 0.0.0.0 --port 8000
    """
    cli = state(ctx)
    settings = cli.settings  # first: weak settings are refused before anything starts
    from notifyctl.cli.launcher import refuse_taken_ports

    refuse_taken_ports({"port": (host, port)})  # before a link to someone else's server

    import uvicorn

    from notifyctl.logs import configure_logging
    from notifyctl.render import info, login_lines
    from notifyctl.services.tokens import new_secret
    from web.app import SERVER_OPTIONS, create_app, prepare_to_serve

    given = settings.login_token.get_secret_value() if settings.login_token else ""
    login = given or new_secret()
    app = create_app(settings=settings, engine=cli.engine, login_token=login)
    configure_logging(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    if not child:
        info(
            f"REST API on {base}/api/v1  Swagger UI: {base}/docs/\n"
            f"{login_lines(settings, base, token=login, generated=not given)}"
        )
    prepare_to_serve()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **SERVER_OPTIONS)
