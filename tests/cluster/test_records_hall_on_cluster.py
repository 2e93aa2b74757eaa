"""Records, the record writer, hall queues, retried scans, token revocation and the trust feed's
generation run again on the 3-master Redis Cluster (``REDIS_URL=redis+cluster://…``)."""
from tests.hall.conftest import *  # noqa: F401,F403  (the hall fixtures)
from tests.hall.test_queue import *  # noqa: F401,F403
from tests.hall.test_ticket_retry import *  # noqa: F401,F403
from tests.hall.test_disclosure import *  # noqa: F401,F403
from tests.records.test_scan_records import *  # noqa: F401,F403
from tests.records.test_writer import *  # noqa: F401,F403
from tests.test_token_revocation import *  # noqa: F401,F403
from tests.test_trust_feed import *  # noqa: F401,F403
from tests.test_verify_retry import *  # noqa: F401,F403

# Not re-run here: they count sends on one server's connection or pair the cluster with the
# session's single redis-server. The cluster's own versions: test_cluster_keys.py,
# test_cluster_revocation.py.
del test_a_scan_is_one_redis_round_trip  # noqa: F821
del test_announce_waits_for_every_listener_and_says_when_one_did_not_answer  # noqa: F821
del test_a_cached_principal_stops_counting_when_the_auth_generation_moves  # noqa: F821
