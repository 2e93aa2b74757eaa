"""Running the service: preparing the data dir, embedded Redis, migrations, keys, gunicorn."""
