"""Replaying a morning-rush trace under locust: set-up through the admin API (``setup``), the
replay clock and role hand-offs (``dispatch``), terminals' tap journals (``journal``)."""
