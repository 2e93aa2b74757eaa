"""The ``Blueprint`` every API module uses: flask-smorest's, with a webargs parser that answers
400 (problem+json) for every JSON body the service cannot take as text, not only bad syntax.

Beyond syntax errors (webargs' own 400), well-formed JSON can still be unusable:

- ``json.loads`` gives up on nesting deeper than the recursion limit (``RecursionError``) and on
  integers longer than the interpreter's digit limit (``ValueError``);
- an escaped lone surrogate (``"\\ud800"``) decodes to a string that is not Unicode text and
  cannot be encoded, stored or encrypted (``UnicodeEncodeError`` far downstream);
- a NUL character (``"\\u0000"``) is valid JSON but no text column of PostgreSQL takes it.

All three were 500s. A code with such text is not a *bad code* (200 deny) but a request whose
body is not valid JSON text (RFC 8259 §8), refused before any view runs.

The walk over every decoded string is only done when the raw body could hold such a string:
the body is decoded as strict UTF-8 (raw surrogate bytes are already a 400) and JSON allows no
raw control character in a string, so NUL and lone surrogates only come from the escapes
``\\u0000`` and ``\\uD800``-``\\uDFFF``; the pre-filter also looks for raw NUL and surrogate
bytes, to stay safe should the decoding ever change.
"""
from __future__ import annotations

import json
import re
from functools import wraps
from typing import Any, Callable, Mapping

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser, abort


# Anything in the raw body from which a NUL or a surrogate could be decoded (case-insensitive).
_MAY_HOLD_BAD_TEXT = re.compile(rb"\\[uU](?:0000|[dD][89a-fA-F])|\x00|\xed[\xa0-\xbf]")


class NulCharacter(ValueError):
    """A string in the body holds U+0000."""


def _check_text(value: Any) -> None:
    """Raise ``UnicodeEncodeError`` if any key or string in the decoded body is not UTF-8 text,
    ``NulCharacter`` if one holds U+0000."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            item.encode("utf-8")
            if "\x00" in item:
                raise NulCharacter
        elif isinstance(item, dict):
            for key, inner in item.items():
                pending.append(key)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


class JsonBodyParser(FlaskParser):
    def load_json(self, req: flask.Request, schema: ma.Schema) -> Any:
        try:
            data = super().load_json(req, schema)
            if _MAY_HOLD_BAD_TEXT.search(req.get_data(cache=True)) is not None:
                _check_text(data)
        except NulCharacter as exc:
            abort(400, exc=exc, messages={"json": ["Invalid JSON body: strings must not contain "
                                                   "U+0000."]})
        except UnicodeEncodeError as exc:
            abort(400, exc=exc, messages={"json": ["Invalid JSON body: strings must be Unicode text "
                                                   "(no unpaired surrogates)."]})
        except (ValueError, RecursionError) as exc:  # syntax errors were already a 400 above
            abort(400, exc=exc, messages={"json": ["Invalid JSON body."]})
        return data


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def arguments(self, schema: Any, *args: Any,
                  fast: Callable[[Any], dict[str, Any] | None] | None = None, **kwargs: Any) -> Any:
        """flask-smorest's ``arguments``, with a schema class made into one instance up front:
        given a class, webargs builds a new instance on every request (about 20 µs: fields
        deep-copied and bound); a schema instance is stateless between loads, so one serves all
        requests and threads (as flask-smorest already does for response schemas).

        ``fast`` (JSON bodies only) is for hot routes: given the decoded body it returns what the
        schema would load, or ``None`` whenever it is not certain — then webargs and the schema
        decide, and give every 4xx. It must only ever *accept* bodies the schema accepts, with
        the same result (a test per route holds it to that); webargs' machinery costs about a
        tenth of a verify."""
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        parse = super().arguments(schema, *args, **kwargs)
        if fast is None:
            return parse

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            parsed = parse(func)

            @wraps(parsed)
            def wrapper(*f_args: Any, **f_kwargs: Any) -> Any:
                body = _fast_body(fast)
                if body is None:
                    return parsed(*f_args, **f_kwargs)
                return func(*f_args, body, **f_kwargs)

            return wrapper

        return decorator


def _fast_body(fast: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any] | None:
    """``fast(decoded body)`` when the request is plainly JSON text; ``None`` to let webargs
    parse it (any other content type, text that could hold NUL or a surrogate, bad syntax)."""
    request = flask.request
    if request.mimetype != "application/json":
        return None
    raw = request.get_data(cache=True)  # over the body limit: 413 here, as in webargs
    if _MAY_HOLD_BAD_TEXT.search(raw) is not None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return fast(data)


def json_response(body: Mapping[str, Any], fields: frozenset[str]) -> flask.Response:
    """``body`` limited to the response schema's top-level ``fields`` as a JSON response, what
    ``@blp.response`` would send for a schema whose fields are plain values and dicts — without
    marshmallow's dump. For hot routes whose body is built by domain code in that shape."""
    return flask.current_app.json.response({k: v for k, v in body.items() if k in fields})
