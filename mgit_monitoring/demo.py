"""``mgit-monitoring demo``: real git work, offline, that fills the metrics, logs and dashboard.

The demo creates small local git repositories in a temporary directory, starts the
monitoring server (or reports to one already running, through the shared store), and
runs real ``git clone`` and ``git pull`` commands on them from a small thread pool, each
inside a correlation context and through the public decorators
(:func:`~mgit_monitoring.integration.monitor_mgit_operation`,
:func:`~mgit_monitoring.integration.monitor_git_operation`,
:func:`~mgit_monitoring.integration.monitor_provider_api_call`,
:func:`~mgit_monitoring.integration.monitor_authentication`). A simulated provider API
(a stdlib HTTP server on 127.0.0.1) answers with real status codes: 200, 401 for a bad
token, 404 for a repository that does not exist, and exactly one 429 rate limit. A few
operations fail on purpose (a clone of a missing repository, a pull in a broken clone).

State goes to ``$MGIT_MONITORING_STATE_DIR`` when set, otherwise to the temporary
directory, so the demo never touches a user's real history. JSON logs go to
``demo.log`` in the temporary directory. Everything is removed on exit and on Ctrl-C.

Exit status: 0 when the demo ran to its end (stopping the server with Ctrl-C after the
work is done is the normal end), 130 when Ctrl-C or SIGTERM interrupted the work, 2 for a
usage problem (no git, an unreachable ``--server``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import signal
import subprocess  # nosec B404 # runs git only, an argument list, never a shell
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Sequence, Set, TextIO

__all__ = ["DEMO_PROVIDER", "DemoProvider", "add_arguments", "main", "run"]

DEMO_PROVIDER = "demo"
"""The provider label of the simulated API."""
_ORG = "demo-org"
_GOOD_TOKEN = "demo-token"  # nosec B105 # the simulated API's token, nothing real
_DEFAULT_PORT = 8080
_TICK = 0.4  # seconds between two rounds of work


class _Interrupted(Exception):
    """SIGTERM, turned into an exception in the main thread."""


class GitError(Exception):
    """A git command failed (its exit status and stderr are in the message)."""


class ApiError(Exception):
    """A response with status >= 400 from the simulated provider."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status_code = status
        self.headers = dict(headers)


class ApiResponse:
    """A successful response: ``status_code``, ``headers`` and the decoded JSON body."""

    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        self.status_code = status
        self.headers = dict(headers)
        self.body = body


# -- the simulated provider API ---------------------------------------------------------------


class DemoProvider:
    """A tiny provider API on ``127.0.0.1`` (port 0) in a daemon thread.

    ``GET /user`` is 200 with ``Authorization: Bearer demo-token`` and 401 otherwise;
    ``GET /orgs/<org>/repos`` lists the repositories; ``GET /repos/<org>/<name>`` is 200
    for a known repository, 404 otherwise; the ``rate_limit_at``-th
    API request (``/orgs`` and ``/repos`` paths) is answered 429 with ``Retry-After``, once.
    ``requests`` counts the API answers by status, ``auth`` the ``/user`` answers; ``/``
    (what the health checks probe) is always 200 and counted in neither.
    """

    def __init__(self, repositories: Sequence[str], rate_limit_at: int = 2) -> None:
        self.repositories = list(repositories)
        self.rate_limit_at = rate_limit_at
        self.requests: Dict[int, int] = {}
        self.auth: Dict[int, int] = {}
        self._lock = threading.Lock()
        self._seen = 0
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                status, body, extra = provider.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_HEAD = do_GET  # the health check's reachability probe

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="mgit-demo-provider", daemon=True
        )

    def start(self) -> DemoProvider:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def answer(self, path: str, authorization: str | None) -> Any:
        """``(status, JSON body, extra headers)`` for one request."""
        parts = [p for p in path.split("?")[0].split("/") if p]
        body: Any
        extra: Dict[str, str]
        api = bool(parts) and parts[0] in ("orgs", "repos")
        with self._lock:
            if api:
                self._seen += 1
            limited = api and self._seen == self.rate_limit_at
        if limited:
            status, body, extra = (
                429,
                {"message": "API rate limit exceeded"},
                {
                    "Retry-After": "1",
                    "X-RateLimit-Remaining": "0",
                },
            )
        elif parts == ["user"]:
            if authorization == f"Bearer {_GOOD_TOKEN}":
                status, body, extra = 200, {"login": "demo"}, {}
            else:
                status, body, extra = 401, {"message": "Bad credentials"}, {}
        elif len(parts) == 3 and parts[0] == "orgs" and parts[2] == "repos":
            status, body, extra = 200, [{"name": n} for n in self.repositories], {}
        elif len(parts) == 3 and parts[0] == "repos":
            if parts[2] in self.repositories:
                status, body, extra = 200, {"name": parts[2]}, {}
            else:
                status, body, extra = 404, {"message": "Not Found"}, {}
        elif not parts:
            status, body, extra = 200, {"service": "mgit demo provider"}, {}
        else:
            status, body, extra = 404, {"message": "Not Found"}, {}
        tally = self.requests if api else self.auth if parts == ["user"] else None
        if tally is not None:
            with self._lock:
                tally[status] = tally.get(status, 0) + 1
        return status, body, extra


def _api_get(base: str, path: str, token: str | None = _GOOD_TOKEN) -> ApiResponse:
    """GET ``base + path``; ApiError (with the real status) for an answer >= 400."""
    request = urllib.request.Request(base + path, method="GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        # ``base`` is always the simulated provider's own http://127.0.0.1 URL.
        with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310 # see above
            body = json.loads(response.read().decode("utf-8") or "null")
            return ApiResponse(response.status, dict(response.headers), body)
    except urllib.error.HTTPError as exc:
        headers = dict(exc.headers or {})
        exc.close()
        raise ApiError(exc.code, str(exc.reason), headers) from None


# -- git ---------------------------------------------------------------------------------------


def _git_env(home: str, ceiling: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HOME": home,
            "GIT_CEILING_DIRECTORIES": ceiling,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.path.join(home, ".gitconfig"),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "mgit demo",
            "GIT_AUTHOR_EMAIL": "demo@example.invalid",
            "GIT_COMMITTER_NAME": "mgit demo",
            "GIT_COMMITTER_EMAIL": "demo@example.invalid",
            "LC_ALL": "C",
        }
    )
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    return env


class _Git:
    """Runs git with an isolated configuration (no user or system config is read)."""

    def __init__(self, git: str, home: str, ceiling: str) -> None:
        self.git = git
        self.env = _git_env(home, ceiling)

    def __call__(self, *args: str, cwd: str | None = None) -> str:
        from mgit_monitoring.context import child_env

        done = subprocess.run(  # nosec B603 # the git found on PATH, an argument list, no shell
            [self.git, *args],
            cwd=cwd,
            env=child_env(self.env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise GitError(
                f"git {args[0]} exited {done.returncode}: {message[-1] if message else ''}"
            )
        return done.stdout


def _commit(git: _Git, path: str, name: str, text: str, message: str, first: bool) -> None:
    """Write ``name`` and record it as a commit on the current branch.

    Plumbing (``write-tree``, ``commit-tree``, ``update-ref``) rather than ``git commit``:
    no hooks, no editor and no user identity configuration are involved.
    """
    with open(os.path.join(path, name), "a", encoding="utf-8") as f:
        f.write(text)
    git("add", name, cwd=path)
    tree = git("write-tree", cwd=path).strip()
    parent = () if first else ("-p", "HEAD")
    sha = git("commit-tree", tree, *parent, "-m", message, cwd=path).strip()
    git("update-ref", "HEAD", sha, cwd=path)


def _make_origin(git: _Git, path: str, name: str) -> None:
    os.makedirs(path)
    git("-c", "init.defaultBranch=main", "init", "-q", path)
    readme = f"# {name}\n\nA repository made by `mgit-monitoring demo`.\n"
    _commit(git, path, "README.md", readme, f"Create {name}", True)


def _commit_change(git: _Git, path: str, round_no: int) -> None:
    _commit(git, path, "CHANGES.md", f"- change {round_no}\n", f"Change {round_no}", False)


# -- the workload ------------------------------------------------------------------------------


class _Workload:
    """The decorated functions and the rounds of work, with the demo's own tallies."""

    def __init__(self, git: _Git, root: str, names: Sequence[str], api: str) -> None:
        from mgit_monitoring.integration import (
            monitor_authentication,
            monitor_git_operation,
            monitor_mgit_operation,
            monitor_provider_api_call,
        )

        self.git = git
        self.root = root
        self.names = list(names)
        self.api = api
        self.tally: Dict[str, int] = {}
        self._lock = threading.Lock()
        self.cloned: Dict[str, bool] = {}

        @monitor_git_operation(operation_type="clone")
        def git_clone(repo_url: str, destination: str) -> None:
            git("clone", "-q", repo_url, destination)

        @monitor_git_operation(operation_type="pull")
        def git_pull(repo_path: str) -> None:
            git("pull", "-q", "--ff-only", cwd=repo_path)

        @monitor_provider_api_call(
            provider_name=DEMO_PROVIDER, endpoint="/repos/{org}/{repo}", method="GET"
        )
        def get_repository(org: str, name: str) -> ApiResponse:
            return _api_get(api, f"/repos/{org}/{name}")

        @monitor_provider_api_call(
            provider_name=DEMO_PROVIDER, endpoint="/orgs/{org}/repos", method="GET"
        )
        def list_repositories(org: str) -> ApiResponse:
            return _api_get(api, f"/orgs/{org}/repos")

        @monitor_authentication(provider_name=DEMO_PROVIDER)
        def authenticate(organization: str, token: str) -> bool:
            try:
                _api_get(api, "/user", token)
            except ApiError as exc:
                if exc.status_code == 401:
                    return False
                raise
            return True

        @monitor_mgit_operation(operation_name="sync_repository", provider=DEMO_PROVIDER)
        def sync_repository(name: str) -> str:
            try:
                get_repository(_ORG, name)
            except ApiError as exc:
                if exc.status_code != 429:
                    raise
                self._count("api_rate_limited")
                time.sleep(0.05)  # a polite retry after the rate limit
                get_repository(_ORG, name)
            origin = os.path.join(root, "origins", name)
            clone = os.path.join(root, "clones", name)
            if not self.cloned.get(name):
                git_clone(origin, clone)
                self.cloned[name] = True
                return "clone"
            git_pull(clone)
            return "pull"

        self.git_clone = git_clone
        self.git_pull = git_pull
        self.get_repository = get_repository
        self.list_repositories = list_repositories
        self.authenticate = authenticate
        self.sync_repository = sync_repository

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.tally[key] = self.tally.get(key, 0) + n

    def _attempt(self, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            result = fn(*args)
        except Exception:  # the failures are the point: they are counted and logged
            self._count(key + "_failed")
            return None
        self._count(key + "_ok")
        return result

    def start(self) -> None:
        """Authentication (one good, one bad token) and the listing, before the rounds."""
        from mgit_monitoring.context import correlation_context

        with correlation_context("demo_setup", organization=_ORG):
            self._count("auth_ok" if self.authenticate(_ORG, _GOOD_TOKEN) else "auth_failed")
            self._count("auth_ok" if self.authenticate(_ORG, "wrong-token") else "auth_failed")
            self._attempt("list", self.list_repositories, _ORG)

    def one(self, name: str) -> None:
        """Sync one repository in its own correlation context."""
        from mgit_monitoring.context import correlation_context

        with correlation_context("demo_sync", repository=name):
            kind = self._attempt("sync", self.sync_repository, name)
            if kind is not None:
                self._count(kind)

    def failures(self, round_no: int) -> None:
        """The operations that fail on purpose (once per few rounds)."""
        from mgit_monitoring.context import correlation_context

        with correlation_context("demo_failures"):
            missing = os.path.join(self.root, "origins", f"missing-{round_no}")
            self._attempt(
                "clone_missing",
                self.git_clone,
                missing,
                os.path.join(self.root, "clones", f"missing-{round_no}"),
            )
            self._attempt("api_missing", self.get_repository, _ORG, f"missing-{round_no}")
            broken = os.path.join(self.root, "broken")
            self._attempt("pull_broken", self.git_pull, broken)


def _shutdown(pool: Any) -> None:
    if sys.version_info >= (3, 9):
        pool.shutdown(wait=True, cancel_futures=True)
    else:
        pool.shutdown(wait=True)


def _run_rounds(
    work: _Workload,
    git: _Git,
    pool: Any,
    deadline: float,
    stop: threading.Event,
    progress: Callable[[int], None],
) -> int:
    """Rounds of work until ``deadline``: each syncs every repository, some fail on purpose."""
    from mgit_monitoring.collector import get_metrics_collector

    rounds = 0
    processed: Set[str] = set()
    while not stop.is_set():
        rounds += 1
        if rounds > 1:  # new commits upstream, so pulls fetch something
            for name in work.names[:: max(1, len(work.names) // 2)]:
                _commit_change(git, os.path.join(work.root, "origins", name), rounds)
        futures = [pool.submit(work.one, name) for name in work.names]
        if rounds == 1 or rounds % 3 == 0:
            futures.append(pool.submit(work.failures, rounds))
        for future in futures:
            future.result()
        processed.update(n for n in work.names if work.cloned.get(n))
        get_metrics_collector().update_repositories_processed(len(processed))
        progress(rounds)
        if time.monotonic() >= deadline:
            break
        stop.wait(_TICK)
    return rounds


# -- the command -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` options: ``--repos``, ``--duration``, ``--port``, ``--host``, ``--server``..."""
    parser.add_argument(
        "--repos", type=int, default=5, metavar="N", help="repositories to create (default: 5)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds of git work (default: 60); at least one round always runs",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"server port (default: {_DEFAULT_PORT}, or a free one if taken; 0: a free one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--server",
        metavar="URL",
        help="report to this running server instead of starting one (it must share "
        "MGIT_MONITORING_STATE_DIR with the demo)",
    )
    parser.add_argument("--workers", type=int, default=4, help="threads (default: 4)")
    parser.add_argument(
        "--exit",
        dest="exit_after",
        action="store_true",
        help="stop when the work is done instead of serving until Ctrl-C",
    )


def _start_server(host: str, port: int | None, integration: Any, say: Callable[[str], None]) -> Any:
    from mgit_monitoring.errors import ServerError
    from mgit_monitoring.server import MonitoringServer

    options: Dict[str, Any] = {
        "registry": integration.registry,
        "health_checker": integration.health,
    }
    if integration.store is not None:
        options["history"] = integration.store
    if port is None:
        try:
            return MonitoringServer(host, _DEFAULT_PORT, **options).start()
        except ServerError as exc:
            say(f"port {_DEFAULT_PORT} is not free ({exc}); using a free port")
            port = 0
    return MonitoringServer(host, port, **options).start()


def _check_server(url: str) -> str | None:
    """None when ``url`` answers ``/health/live``, else why not."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return "not an http:// or https:// URL"
    try:
        live = url.rstrip("/") + "/health/live"
        with urllib.request.urlopen(live, timeout=5) as response:  # nosec B310 # http(s) only
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        exc.close()
        return None if exc.code in (401, 503) else f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", None) or exc)


def run(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """Run the demo with parsed ``args`` (see :func:`add_arguments`); returns the exit status."""
    out = sys.stdout if out is None else out
    env = dict(os.environ if environ is None else environ)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    if args.repos < 1 or args.repos > 200:
        say("error: --repos must be between 1 and 200")
        return 2
    if not (args.duration >= 0):
        say("error: --duration must be >= 0")
        return 2
    git_path = shutil.which("git")
    if git_path is None:
        say("error: the demo needs git on PATH")
        return 2
    if args.server:
        problem = _check_server(args.server)
        if problem is not None:
            say(f"error: --server {args.server}: {problem}")
            return 2

    root = tempfile.mkdtemp(prefix="mgit-demo-")
    stop = threading.Event()
    interrupted = False
    cleanup: List[Callable[[], Any]] = []
    previous_term = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and hasattr(signal, "SIGTERM"):

        def on_term(signum: int, frame: Any) -> None:
            raise _Interrupted()

        previous_term = signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            _demo(args, env, root, git_path, stop, cleanup, say)
        except (KeyboardInterrupt, _Interrupted) as exc:
            interrupted = not getattr(exc, "after_work", False)
            stop.set()
            say("\nstopping...")
    finally:
        stop.set()
        for step in reversed(cleanup):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean up as much as possible
                say(f"cleanup: {type(exc).__name__}: {exc}")
        shutil.rmtree(root, ignore_errors=True)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    say(f"removed {root}")
    return 130 if interrupted else 0


def _demo(
    args: argparse.Namespace,
    env: Dict[str, str],
    root: str,
    git_path: str,
    stop: threading.Event,
    cleanup: List[Callable[[], Any]],
    say: Callable[[str], None],
) -> None:
    from mgit_monitoring.context_threads import ContextThreadPoolExecutor
    from mgit_monitoring.integration import (
        reset_monitoring_integration,
        setup_monitoring_integration,
    )
    from mgit_monitoring.logs import setup_structured_logging

    state_dir = env.get("MGIT_MONITORING_STATE_DIR") or os.path.join(root, "state")
    log_file = os.path.join(root, "demo.log")
    names = [f"demo-repo-{i + 1:02d}" for i in range(args.repos)]

    git = _Git(git_path, os.path.join(root, "home"), root)
    os.makedirs(os.path.join(root, "home"))
    os.makedirs(os.path.join(root, "clones"))
    for name in names:
        _make_origin(git, os.path.join(root, "origins", name), name)
    os.makedirs(os.path.join(root, "broken"))  # a clone whose repository is gone
    with open(os.path.join(root, "broken", ".git"), "w", encoding="utf-8") as f:
        f.write("gitdir: " + os.path.join(root, "gone.git") + "\n")

    provider = DemoProvider(names).start()
    cleanup.append(provider.close)

    handlers = setup_structured_logging(
        log_file=log_file, log_level="INFO", console=False, environ=env
    )

    def drop_handlers() -> None:
        import logging

        root_logger = logging.getLogger()
        for handler in handlers:
            root_logger.removeHandler(handler)
            handler.close()

    cleanup.append(drop_handlers)
    config_env = {k: v for k, v in env.items() if not k.startswith("MGIT_MONITORING_")}
    integration = setup_monitoring_integration(
        force=True,
        environ=config_env,
        enabled=True,
        persist=True,
        state_dir=state_dir,
        flush_interval_seconds=1.0,
        health_interval_seconds=10.0,
        network_hosts=f"127.0.0.1:{provider.port}",
        provider_endpoints=f"{DEMO_PROVIDER}={provider.url}/",
    )
    cleanup.append(reset_monitoring_integration)

    if args.server:
        url = args.server.rstrip("/")
        server = None
    else:
        server = _start_server(args.host, args.port, integration, say)
        cleanup.append(server.close)
        url = server.url
    plural = "repository" if len(names) == 1 else "repositories"
    say(f"mgit monitoring demo: {len(names)} {plural} in {root}")
    say(f"  dashboard:    {url}/")
    say(f"  metrics:      {url}/metrics")
    say(f"  health:       {url}/health/detailed")
    say(f"  JSON log:     {log_file}")
    say(f"  traces:       MGIT_MONITORING_STATE_DIR={state_dir} \\")
    say("                python3 -m mgit_monitoring performance --hours 1")
    if args.server:
        say("  (the server shows this work if it reads the same MGIT_MONITORING_STATE_DIR)")
    say(f"serving on {url}")

    work = _Workload(git, root, names, provider.url)
    pool = ContextThreadPoolExecutor(
        max_workers=max(1, args.workers), thread_name_prefix="mgit-demo"
    )
    cleanup.append(lambda: _shutdown(pool))
    work.start()
    deadline = time.monotonic() + float(args.duration)

    def progress(rounds: int) -> None:
        if rounds == 1 or rounds % 10 == 0:
            say(f"round {rounds}: {work.tally.get('sync_ok', 0)} syncs done")

    rounds = _run_rounds(work, git, pool, deadline, stop, progress)
    if integration.shared is not None:
        integration.shared.flush()
    integration.performance.flush()
    summary = {
        "rounds": rounds,
        "repositories": len(names),
        "processed": len([n for n in names if work.cloned.get(n)]),
        "api_responses": {str(k): v for k, v in sorted(provider.requests.items())},
        "auth_responses": {str(k): v for k, v in sorted(provider.auth.items())},
        **dict(sorted(work.tally.items())),
    }
    say("demo finished: " + json.dumps(summary, sort_keys=True))
    if server is None or args.exit_after:
        return
    say(f"open {url}/ ; press Ctrl-C to stop the server and remove {root}")
    try:
        while server.running:
            time.sleep(0.5)
    except (KeyboardInterrupt, _Interrupted) as exc:
        exc.after_work = True  # type: ignore[union-attr]
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m mgit_monitoring.demo [--repos N] [--duration S] [--port P] ...``."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mgit_monitoring.demo",
        description="Create local git repositories, run real git work on them with "
        "monitoring on, and serve the dashboard.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
