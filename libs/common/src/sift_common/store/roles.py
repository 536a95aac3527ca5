"""Least privilege in PostgreSQL: a NOLOGIN group role per kind of access, granted exactly
what Sift's code does with the tables (docs/security.md).

    sift_archiver  SELECT, INSERT, UPDATE on the pipeline tables (it writes them in upserts
                   and serves the query API from them); no DELETE, no TRUNCATE
    sift_analyzer  SELECT on the pipeline tables (a digest's context); SELECT, INSERT, UPDATE
                   on analysis_state (skip-interval and fencing)
    sift_gateway   USAGE on the schema `gateway`, SELECT and INSERT on gateway.request_logs
                   (binary COPY), SELECT, INSERT, UPDATE on gateway.aliases and
                   gateway.alias_switches (switches); nothing in `public`
    sift_reader    SELECT on the pipeline tables: analysts, a read-only query API, reports

No role may create anything (PostgreSQL 15+ takes CREATE on `public` from PUBLIC; on older
servers it is revoked here). The tables stay owned by the user that runs the migrations.
`grant_roles` runs in one transaction: the roles are created when missing, every privilege
they hold on Sift's schemas is revoked, then granted again, so running it after each
`sift-db upgrade` converges on exactly this. Login users join a group:
`CREATE ROLE archiver LOGIN PASSWORD '...' IN ROLE sift_archiver` (or `sift-db roles` with
SIFT_DB_PASSWORD_<ROLE> set, which makes `<role>_login` users).
"""

from collections.abc import Mapping

import asyncpg

PIPELINE_TABLES = (
    "documents",
    "analyses",
    "embeddings",
    "entities",
    "document_entities",
    "entity_digests",
)
ARCHIVER, ANALYZER, GATEWAY, READER = (
    "sift_archiver",
    "sift_analyzer",
    "sift_gateway",
    "sift_reader",
)
ROLES = (ARCHIVER, ANALYZER, GATEWAY, READER)
SCHEMAS = ("public", "gateway")


def grant_statements() -> list[str]:
    """Revoke, then grant: the whole privilege set of every role, in order."""
    pipeline = ", ".join(f"public.{table}" for table in PIPELINE_TABLES)
    roles = ", ".join(ROLES)
    schemas = ", ".join(SCHEMAS)
    return [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schemas} FROM {roles}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schemas} FROM {roles}",
        f"REVOKE ALL ON SCHEMA {schemas} FROM {roles}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {ARCHIVER}, {ANALYZER}, {READER}",
        f"GRANT SELECT, INSERT, UPDATE ON {pipeline} TO {ARCHIVER}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ARCHIVER}",
        f"GRANT SELECT ON {pipeline} TO {ANALYZER}, {READER}",
        f"GRANT SELECT, INSERT, UPDATE ON public.analysis_state TO {ANALYZER}",
        f"GRANT USAGE ON SCHEMA gateway TO {GATEWAY}",
        f"GRANT SELECT, INSERT ON gateway.request_logs TO {GATEWAY}",
        f"GRANT SELECT, INSERT, UPDATE ON gateway.aliases, gateway.alias_switches TO {GATEWAY}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA gateway TO {GATEWAY}",
    ]


async def grant_roles(
    connection: asyncpg.Connection, logins: Mapping[str, str] | None = None
) -> list[str]:
    """Create the group roles when missing and set their privileges; `logins` maps a group
    (`sift_archiver`, ...) to the password of its login user `<group>_login`, created or
    updated. Run as the tables' owner with CREATEROLE. What was done, line by line."""
    done = []
    async with connection.transaction():
        existing = {r["rolname"] for r in await connection.fetch("SELECT rolname FROM pg_roles")}
        for role in ROLES:
            if role not in existing:
                await connection.execute(f"CREATE ROLE {role} NOLOGIN")
                done.append(f"role {role} created")
        for statement in grant_statements():
            await connection.execute(statement)
        done.append(f"privileges of {', '.join(ROLES)} set")
        for group, password in (logins or {}).items():
            if group not in ROLES:
                raise ValueError(f"no group role {group}")
            login = f"{group}_login"
            verb = "ALTER" if login in existing else "CREATE"
            statement = await connection.fetchval(
                f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                login,
                password,
            )
            await connection.execute(statement)
            await connection.execute(f"GRANT {group} TO {login}")
            done.append(f"login {login} in {group}")
    return done
