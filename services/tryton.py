"""A Tryton server for the platform (``retail dev`` with ``RETAIL_ERP=tryton``, and the tests):
``trytond`` from the venv, JSON-RPC on ``RETAIL_TRYTON_URL``, a database of its own.

Activating Tryton's modules costs about 20-45 s of CPU, so it happens once: a template database
(modules activated, then ``services.tryton_bootstrap``: company, chart of accounts, fiscal years,
payment term) is kept under ``<data_dir>/tryton/templates/`` keyed by the installed Tryton
module versions, and every new database is a copy of it (SQLite: a file copy; PostgreSQL:
``CREATE DATABASE ... TEMPLATE``). A second start with the same versions takes seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from settings import Settings

MODULES = ("sale", "account_invoice_stock", "sale_amendment")
ADMIN_EMAIL = "admin@example.com"


def template_key() -> str:
    """Changes when any installed Tryton distribution (trytond, its modules) changes version."""
    versions = sorted(
        f"{d.metadata['Name'].lower()}=={d.version}"
        for d in metadata.distributions()
        if d.metadata["Name"] and d.metadata["Name"].lower().replace("-", "_").startswith("trytond")
    )
    if not versions:
        raise FileNotFoundError("trytond is not installed: make venv installs it (requirements.lock)")
    return hashlib.sha256("\n".join([*versions, *MODULES, "bootstrap-1"]).encode()).hexdigest()[:12]


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: make venv installs trytond")
    return found


@dataclass
class TrytonServer:
    """One trytond serving ``database`` at ``host:port`` (SQLite under ``root`` unless
    ``database_url`` names a PostgreSQL server)."""

    root: Path
    database: str
    host: str = "127.0.0.1"
    port: int = 8128
    password: str = "admin"
    database_url: str | None = None
    templates: Path | None = None  # default: <root>/templates
    # PostgreSQL only: trytond processes (gunicorn pre-fork, threads in each). One trytond
    # process runs its Python on one core; several share the load.
    processes: int = 2
    threads: int = 4
    # PostgreSQL only: Tryton's queued tasks (printing a posted invoice, processing a sale
    # after a post) run in a trytond-worker instead of inside the request that queued them.
    queue_worker: bool = True
    proc: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        # trytond reads its config from another working directory's point of view: absolute paths.
        self.root = self.root.resolve()
        if self.templates is not None:
            self.templates = self.templates.resolve()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def postgres(self) -> bool:
        return bool(self.database_url) and str(self.database_url).startswith("postgres")

    def _config(self, name: str, path: Path) -> Path:
        conf = self.root / f"{name}.conf"
        if self.postgres:
            assert self.database_url is not None
            parts = urlsplit(self.database_url)
            uri = f"postgresql://{parts.netloc}/"
            db = f"uri = {uri}\n"
        else:
            db = f"uri = sqlite://\npath = {path}\n"
        # Tryton retries a transaction that met a lock (PostgreSQL: two assignments of one
        # product at one warehouse, two posts drawing invoice numbers) after 20 ms x attempt;
        # the default 5 attempts (0.3 s) are shorter than one such transaction under load.
        db += "retry = 20\n"
        conf.write_text(
            f"[database]\n{db}\n[web]\nlisten = {self.host}:{self.port}\n\n[session]\ntimeout = 86400\n"
            "max_attempt = 50\n" + (self._queue if name == "trytond" else "")
        )
        return conf

    @property
    def _queue(self) -> str:
        return "\n[queue]\nworker = True\n" if self.postgres and self.queue_worker else ""

    def _env(self) -> dict[str, str]:
        passfile = self.root / "admin.pass"
        passfile.write_text(self.password)
        return {
            **os.environ,
            "TRYTONPASSFILE": str(passfile),
            "PYTHONPATH": str(Path(__file__).parent.parent),
        }

    def _run(self, args: list[str], conf: Path, log: Path) -> None:
        with log.open("ab") as out:
            done = subprocess.run(args, env=self._env(), stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed with {done.returncode} (see {log})")

    def ensure_database(self) -> bool:
        """Create the database from the template (building the template first if needed);
        returns True when it was created now, False when it already existed."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = template_key()
        template = f"rc_template_{key}"
        if self.postgres:
            return self._ensure_postgres(template)
        tdir = self.templates or self.root / "templates"
        tdir.mkdir(parents=True, exist_ok=True)
        tfile = tdir / f"{template}.sqlite"
        if not tfile.exists():
            self._build_template(template, tdir, tfile)
        dfile = self.root / f"{self.database}.sqlite"
        if dfile.exists():
            return False
        shutil.copyfile(tfile, dfile.with_suffix(".tmp"))
        dfile.with_suffix(".tmp").rename(dfile)
        return True

    def _build_template(self, template: str, tdir: Path, tfile: Path) -> None:
        work = tdir / f"{template}.building.sqlite"
        work.unlink(missing_ok=True)
        work.touch()
        name = work.stem
        conf = self._config("template", tdir)
        log = self.root / "trytond-admin.log"
        admin = [_bin("trytond-admin"), "-c", str(conf), "-d", name, "--all", "--email", ADMIN_EMAIL]
        self._run([*admin, "-u", *MODULES, "--activate-dependencies"], conf, log)
        self._run([sys.executable, "-m", "services.tryton_bootstrap", str(conf), name], conf, log)
        work.rename(tfile)

    def _ensure_postgres(self, template: str) -> bool:
        import psycopg

        assert self.database_url is not None
        admin_url = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            if self.database in names:
                return False
            if template not in names:
                building = f"{template}_building"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
                conn.execute(f"CREATE DATABASE \"{building}\" TEMPLATE template0 ENCODING 'UTF8'")
                conf = self._config("template", self.root)
                log = self.root / "trytond-admin.log"
                admin = [
                    _bin("trytond-admin"),
                    "-c",
                    str(conf),
                    "-d",
                    building,
                    "--all",
                    "--email",
                    ADMIN_EMAIL,
                ]
                self._run([*admin, "-u", *MODULES, "--activate-dependencies"], conf, log)
                self._run([sys.executable, "-m", "services.tryton_bootstrap", str(conf), building], conf, log)
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
            conn.execute(f'CREATE DATABASE "{self.database}" TEMPLATE "{template}"')
        return True

    def start(self, timeout: float = 60.0) -> None:
        """Serve the database (created from the template if new); wait until it answers."""
        self.ensure_database()
        conf = self._config("trytond", self.root)
        log = (self.root / "trytond.log").open("ab")
        # SQLite: one request at a time (services/tryton_serve.py says why); PostgreSQL: several
        # processes (gunicorn) when asked, else trytond's own threaded server.
        env = self._env()
        if not self.postgres:
            command = [sys.executable, "-m", "services.tryton_serve", str(conf), self.database]
        elif self.processes > 1:
            # Tryton's documented way to serve several processes: its WSGI app under a
            # pre-forking server; the pool is loaded before the fork (TRYTOND_DATABASE_NAMES).
            env |= {"TRYTOND_CONFIG": str(conf), "TRYTOND_DATABASE_NAMES": self.database}
            command = [
                _bin("gunicorn"),
                "--workers",
                str(self.processes),
                "--threads",
                str(self.threads),
                "--bind",
                f"{self.host}:{self.port}",
                "--timeout",
                "300",
                # Longer than the client keeps an idle connection (httpx: 5 s), so a request
                # never goes out on a connection the server is closing.
                "--keep-alive",
                "30",
                "--graceful-timeout",
                "5",  # within stop()'s 10 s, so its workers never outlive it
                "--preload",
                "trytond.application:app",
            ]
        else:
            command = [_bin("trytond"), "-c", str(conf), "-d", self.database]
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"trytond exited with {self.proc.returncode} (see {self.root / 'trytond.log'})"
                )
            if answers(self.url, self.database):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"trytond did not answer within {timeout:.0f}s")
            time.sleep(0.2)
        self.keep_worker()

    def keep_worker(self) -> bool:
        """Start the queue worker (PostgreSQL, ``queue_worker``) unless it runs; True when it
        had to be (re)started. ``retail tryton serve`` calls it to restart one that died."""
        if not (self.postgres and self.queue_worker):
            return False
        if self.worker is not None and self.worker.poll() is None:
            return False
        if self.worker is not None:
            self.stop_worker()  # its pool, if the leader died alone
        conf = self.root / "trytond.conf"
        with (self.root / "trytond.log").open("ab") as log:
            self.worker = subprocess.Popen(
                [_bin("trytond-worker"), "-c", str(conf), "-d", self.database, "-n", "1"],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pool of processes stops with it (stop_worker)
            )
        return True

    def stop(self) -> None:
        self.stop_worker()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop_worker(self) -> None:
        """Stop the queue worker and its pool: its group, since the pool's processes outlive a
        leader that was told to stop (seen here). Tasks are transactions: one cut short is
        rolled back."""
        if self.worker is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.worker.pid, sig)
            try:
                self.worker.wait(10)
            except subprocess.TimeoutExpired:
                continue
        self.worker = None


def answers(url: str, database: str) -> bool:
    """Tryton's JSON-RPC answers for ``database`` (401 to a call without a session: it is up)."""
    try:
        r = httpx.post(
            f"{url}/{database}/rpc/",
            json={"id": 0, "method": "common.server.version", "params": []},
            timeout=2,
        )
    except httpx.HTTPError:
        return False
    return r.status_code in (200, 401)


def server_for(
    root: Path,
    url: str,
    database: str,
    password: str,
    database_url: str | None,
    *,
    templates: Path | None = None,
    processes: int = 2,
    queue_worker: bool = True,
) -> TrytonServer:
    parts = urlsplit(url)
    return TrytonServer(
        root=root,
        database=database,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8000,
        password=password,
        database_url=database_url,
        templates=templates,
        processes=processes,
        queue_worker=queue_worker,
    )


def from_settings(settings: Settings) -> TrytonServer:
    """The trytond the platform's settings describe (RETAIL_TRYTON_*), under the data dir."""
    return server_for(
        settings.data_dir / "tryton",
        settings.tryton_url,
        settings.tryton_database,
        settings.tryton_password.get_secret_value(),
        settings.tryton_database_url,
        templates=settings.tryton_template_dir,
        processes=settings.tryton_processes,
        queue_worker=settings.tryton_queue_worker,
    )
