"""When the buffered worker's main loop hands a request to a thread (app/serving/buffering.py)."""
from __future__ import annotations

import pytest

from app.serving.buffering import Limits, Ready, RequestBuffer

LIMITS = Limits(request_line=100, head=1000, body=64)
HEAD = b"POST /v1/verify HTTP/1.1\r\nHost: gate\r\n"


def feed_all(pieces: list[bytes]) -> tuple[RequestBuffer, list[Ready]]:
    buffer = RequestBuffer(LIMITS)
    return buffer, [buffer.feed(piece) for piece in pieces]


def test_a_head_arriving_in_pieces_is_complete_only_with_its_blank_line() -> None:
    _, states = feed_all([b"GET /healthz/live HTTP/1.1\r\n", b"Host: gate\r", b"\n\r", b"\n"])
    assert states == [Ready.MORE, Ready.MORE, Ready.MORE, Ready.COMPLETE]


def test_a_body_split_across_reads_is_complete_at_its_content_length() -> None:
    buffer, states = feed_all([HEAD + b"Content-Length: 12\r\n\r\n{\"co", b"de\":", b"\"x\"}"])
    assert states == [Ready.MORE, Ready.MORE, Ready.COMPLETE]
    assert buffer.in_body and buffer.take().endswith(b'{"code":"x"}')


def test_a_chunked_body_is_complete_at_the_zero_chunk_and_its_trailers() -> None:
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    _, states = feed_all([head + b"5\r\nhel", b"lo\r\n3;ext=1\r\nabc\r\n", b"0\r\n", b"\r\n"])
    assert states == [Ready.MORE, Ready.MORE, Ready.MORE, Ready.COMPLETE]
    _, states = feed_all([head + b"1\r\na\r\n0\r\nX-Trailer: 1\r\n", b"\r\n"])
    assert states == [Ready.MORE, Ready.COMPLETE]


def test_the_first_of_pipelined_requests_is_complete_and_the_next_stays_buffered() -> None:
    first = HEAD + b"Content-Length: 2\r\n\r\n{}"
    buffer, states = feed_all([first + b"GET /healthz/live HTTP/1.1\r\n"])
    assert states == [Ready.COMPLETE]
    assert buffer.take() == first + b"GET /healthz/live HTTP/1.1\r\n"  # all of it, for gunicorn's parser


def test_a_client_expecting_100_continue_is_due_it_only_while_its_body_is_missing() -> None:
    buffer = RequestBuffer(LIMITS)
    assert buffer.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n") is Ready.MORE
    assert buffer.continue_due and buffer.expects_continue
    sent_with_body = RequestBuffer(LIMITS)
    assert sent_with_body.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}") is Ready.COMPLETE
    assert not sent_with_body.continue_due and sent_with_body.expects_continue
    http10 = RequestBuffer(LIMITS)
    http10.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert not http10.continue_due


@pytest.mark.parametrize("head", [
    HEAD + b"Content-Length: 65\r\n\r\n",  # over the largest body accepted: the app says 413
    HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n",
    HEAD + b"Content-Length: -1\r\n\r\n",
    HEAD + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
    HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["oversized", "two-lengths", "negative-length", "length-and-chunked", "other-coding", "bad-chunk-size"])
def test_framing_it_cannot_follow_with_certainty_is_handed_over_at_once(head: bytes) -> None:
    assert RequestBuffer(LIMITS).feed(head) is Ready.HAND_OVER


def test_a_chunked_body_growing_over_the_limit_is_handed_over_for_the_app_to_refuse() -> None:
    _, states = feed_all([HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"28\r\n" + b"a" * 40 + b"\r\n",
                          b"28\r\n" + b"a" * 10])
    assert states == [Ready.MORE, Ready.MORE, Ready.HAND_OVER]


def test_a_head_or_request_line_over_gunicorns_limits_is_handed_over_for_it_to_refuse() -> None:
    assert RequestBuffer(LIMITS).feed(b"GET /" + b"a" * 200) is Ready.HAND_OVER
    buffer = RequestBuffer(LIMITS)
    assert buffer.feed(b"GET / HTTP/1.1\r\n") is Ready.MORE
    assert buffer.feed(b"X-Big: " + b"b" * 1000) is Ready.HAND_OVER


def test_a_request_without_body_is_complete_and_a_reset_starts_the_next_with_what_was_read() -> None:
    buffer = RequestBuffer(LIMITS)
    assert buffer.feed(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n") is Ready.COMPLETE
    buffer.take()
    buffer.reset(b"GET /b HTTP/1.1\r\n")
    assert not buffer.in_body and buffer.check() is Ready.MORE
    assert buffer.feed(b"\r\n") is Ready.COMPLETE
