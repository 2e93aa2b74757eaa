"""The reader against ``citycode serve`` for real (gunicorn, two workers, embedded redis-server):
enrol, decide online, lose the server, decide offline, get it back, upload everything once."""
from __future__ import annotations

from pathlib import Path

import pytest

from scanners.reader import Reader
from tests.ids import resident_id
from tests.integration.conftest import running_server

pytestmark = pytest.mark.slow


def _post(server, path: str, token: str | None = None, **body):
    headers = server.admin_headers() if token is None else {"Authorization": f"Bearer {token}"}
    response = server.request("POST", path, headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_reader_against_a_real_server_online_offline_and_upload(tmp_path: Path) -> None:
    with running_server() as server:
        terminal = _post(server, "/v1/admin/terminals", kind="metro", site={"station": "五四广场"})
        citizen = _post(server, "/v1/admin/citizens", name="李四", id_number=resident_id())
        codes = [_post(server, "/v1/me/code", citizen["app_token"])["code"] for _ in range(3)]
        reader = Reader.enrol(tmp_path / "gate", server.base_url, terminal["terminal_token"])
        try:
            online = reader.scan(codes[0], direction="entry")
            assert (online.mode, online.reason) == ("online", "ok")
            reader.close()
            reader = Reader.open(tmp_path / "gate", base_url="http://127.0.0.1:9")  # uplink lost
            offline = reader.scan(codes[1], direction="exit")
            assert (offline.mode, offline.reason) == ("offline", "ok")
            reader.close()
            reader = Reader.open(tmp_path / "gate")
            uploaded = reader.upload()
            assert (uploaded.error, uploaded.stored, reader.pending()) == (None, 2, 0)
            assert reader.upload().sent == 0
        finally:
            reader.close()
