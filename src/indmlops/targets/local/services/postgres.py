"""PostgreSQL: MLflow's backend store, a cluster of its own under the state directory."""

from __future__ import annotations

import subprocess

from indmlops import clients
from indmlops.errors import IndMLOpsError, MissingDependency
from indmlops.targets.local import render
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.targets.local.services.common import (
    SYSTEM_INSTALL,
    assert_reachable,
    endpoint,
    own_for,
    postgres_bin,
    service_user,
)


def prepare(cfg: StackConfig) -> dict[str, str]:
    server, initdb = postgres_bin("postgres"), postgres_bin("initdb")
    if not server or not initdb:
        raise MissingDependency("PostgreSQL 15 server", SYSTEM_INSTALL.format(pkg="postgresql-15"))
    user = service_user("postgres", "postgresql-15")
    lay = cfg.layout
    data_dir, sock_dir = lay.data / "postgres", lay.run / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock_dir.mkdir(parents=True, exist_ok=True)
    own_for(user, data_dir, sock_dir, mode=0o700)
    assert_reachable(user, data_dir, "postgres")
    if not (data_dir / "PG_VERSION").exists():
        pwfile = lay.run / "postgres.pwfile"
        pwfile.write_text(cfg.credentials["postgres"]["superuser_password"] + "\n")
        own_for(user, pwfile, mode=0o600)
        try:
            res = subprocess.run(
                [initdb, "-D", str(data_dir), "-U", cfg.credentials["postgres"]["superuser"],
                 f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                 "-E", "UTF8", "--locale=C"],
                user=user, cwd="/", capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise IndMLOpsError(f"initdb into {data_dir} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    hba = lay.conf / "postgres" / "pg_hba.conf"
    render.write(hba, render.postgres_hba())
    argv = [server, "-D", str(data_dir), "-c", f"port={cfg.ports['postgres']}", "-c", f"listen_addresses={HOST}",
            "-c", f"unix_socket_directories={sock_dir}", "-c", f"hba_file={hba}"]
    # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
    return {"command": render.launch(cfg, "postgres", argv, user), "stopsignal": "INT", "stopwaitsecs": "30"}


def ready(cfg: StackConfig) -> str:
    c = cfg.credentials["postgres"]
    return clients.postgres_ready(endpoint(cfg, "postgres"), c["superuser"], c["superuser_password"], "postgres")


def bootstrap(cfg: StackConfig) -> str:
    import psycopg
    from psycopg import sql

    c = cfg.credentials["postgres"]
    with psycopg.connect(host=str(cfg.layout.run / "postgres"), port=cfg.ports["postgres"], user=c["superuser"],
                         dbname="postgres", autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (c["user"],)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(c["user"]),
                                                                          sql.Literal(c["password"])))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (c["database"],)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(c["database"]),
                                                                       sql.Identifier(c["user"])))
    clients.postgres_ready(endpoint(cfg, "postgres"), c["user"], c["password"], c["database"])
    return f"role {c['user']} and database {c['database']} ready"
