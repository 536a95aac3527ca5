"""The PostgreSQL + pgvector store: models, engine, migrations, embedded server."""
