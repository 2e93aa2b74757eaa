"""Alembic environment: runs migrations online against the configured URL."""
from alembic import context
from sqlalchemy import text

from app.db import make_engine
from app.db.models import Base

# Several instances may start at once on one PostgreSQL database (deploy/README.md): the first to
# take this transaction-scoped advisory lock migrates, the others wait for its commit and then find
# the schema at head. Any constant will do; this one spells "CITYCODE" roughly in hex.
MIGRATION_LOCK = 0xC17C0DE

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
engine.dispose()
