"""The scene tests (bus, metro, scenic) run again on the 3-master Redis Cluster: the same
behaviour through ``REDIS_URL=redis+cluster://…`` (every script's keys in one slot, scenic's two
steps, the records in the rider shards' streams)."""
from tests.scenes.test_bus import *  # noqa: F401,F403
from tests.scenes.test_metro_scene import *  # noqa: F401,F403
from tests.scenes.test_scenic import *  # noqa: F401,F403
