"""The request pipeline: everything a request meets before and after its handler, in the contract's
order: authenticate and rate limit in one Redis round trip (401, 429) -> authorize (403) -> path keys,
content type, size and body (400/413/415) -> the handler's one service call (404/409/412).

The PATCH of a session by a key this process knows takes one round trip in all: the update script runs
the gate first (``read_then_admit_in_the_write``), with the same errors in the same order.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from agent_sessions.access import tokens
from agent_sessions.access.auth import (
    SECRET_RE,
    ApiKey,
    authorize,
    digest,
    presented,
)
from agent_sessions.access.ratelimit import Quota, retry_after
from agent_sessions.access.tokens import Credential
from agent_sessions.errors import (
    Forbidden,
    InvalidRequest,
    RateLimited,
    RequestTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from agent_sessions.sessions import models
from agent_sessions.sessions.services import (
    check_path_keys,
)
from agent_sessions.sessions.store import Idempotency
from agent_sessions.web.framework import (
    DIGITS_RE,
    ETAG_RE,
    IDEMPOTENCY_KEY_RE,
    JSON_BYTES,
    MERGE_PATCH_TYPE,
    Call,
    Endpoint,
    header,
    media_type,
)


async def read_body(request: Request, limit: int, accepted: tuple[str, ...]) -> tuple[bytes, str]:
    """The body and its media type (one of ``accepted``), within ``limit`` bytes. A client that sends it
    too slowly is cut off by the HTTP protocol's read timeout (``web/protocol.py``)."""
    media = media_type(request)
    if media not in accepted:
        raise UnsupportedMediaType(f"Content-Type must be {' or '.join(accepted)}, not {media or 'missing'!r}")
    encoding = (header(request, "content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    declared = header(request, "content-length") or ""
    if DIGITS_RE.fullmatch(declared) and int(declared) > limit:
        raise RequestTooLarge(f"request body is larger than {limit} bytes")
    chunks, size, more = [], 0, True
    receive = request.receive
    while more:  # ASGI messages straight (Starlette's stream() is an async generator per request)
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks), media


def bodiless(request: Request) -> bool:
    """The request says it has no body (no Content-Length, or 0, and no Transfer-Encoding)."""
    return header(request, "content-length") in (None, "0") and header(request, "transfer-encoding") is None


def parse_if_match(value: str | None) -> str:
    """If-Match -> "" (absent), "*" or the versions it lists. Weak tags (W/"3") never match (RFC 9110
    strong comparison), and neither does a malformed header: both give a value no version equals."""
    if value is None:
        return ""
    if value.strip() == "*":
        return "*"
    tags = [part.strip() for part in value.split(",")]
    versions = [m.group(1) for tag in tags if (m := ETAG_RE.fullmatch(tag)) and DIGITS_RE.fullmatch(m.group(1))]
    return ",".join(versions) or "-"


def idempotency(request: Request, key: ApiKey, raw: bytes, media: str, if_match: str) -> Idempotency | None:
    value = header(request, "idempotency-key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise InvalidRequest.for_fields({"Idempotency-Key": "must be 1-255 printable ASCII characters"})
    key_digest = hashlib.sha256(value.encode()).hexdigest()  # bounded length, whatever the client sent
    fingerprint = hashlib.sha256(
        b"\0".join([request.method.encode(), request.url.path.encode(), media.encode(), if_match.encode(), raw])
    ).hexdigest()
    settings = request.app.state.settings
    return Idempotency(key.id, key_digest, fingerprint, settings.idempotency_ttl, settings.idempotency_max_per_key)


async def run(endpoint: Endpoint, call: Call) -> tuple[int, Any]:
    """The request's pipeline: ``prepare``, then the endpoint's handler (one service call)."""
    await prepare(endpoint, call)
    return await endpoint.handler(call)


async def prepare(endpoint: Endpoint, call: Call) -> None:
    """Everything before the service call, in the contract's order: authenticate and rate limit (401,
    429), authorize (403), then path keys and the body (400, 413, 415). A PATCH by a key this process
    knows leaves the first two to the update script (one round trip in all)."""
    if endpoint.role is None:
        await read(endpoint, call)
        return
    request = call.request
    layout = request.app.state.layout
    if not layout.checked:  # Redis was unreachable when this process started: check before any key is used
        await layout.ensure()
    call.credential = credential(request, endpoint)
    known = request.app.state.gate.known(call.credential.digest) if endpoint.admits_in_write else None
    usable = None if known is None else call.credential.limit(known)
    if usable is not None and allowed(usable, endpoint, request):
        await read_then_admit_in_the_write(endpoint, call, usable)
    else:
        await admit(endpoint, call)
        await read(endpoint, call)


def credential(request: Request, endpoint: Endpoint) -> Credential:
    """What the request authenticates with (401 for a malformed key or token, an expired token, a key
    in a URL): an API key, or a client token (``tokens``), sent in a header; on the event log's
    endpoints a client token may come as ``?access_token=`` instead (EventSource sends no headers)."""
    in_url = request.query_params.get("access_token") if b"access_token" in request.scope["query_string"] else None
    if in_url is not None and (header(request, "x-api-key") or header(request, "authorization")):
        in_url = None  # a credential in a header is the one
    if in_url is not None:
        if in_url.startswith("ask_"):
            raise Unauthorized("API keys are never accepted in a URL: send the key in the x-api-key header")
        if not endpoint.url_tokens:
            raise Unauthorized("access_token is taken only by GET /v2/events and /v2/events/stream")
        value = in_url
    else:
        value = presented(header(request, "x-api-key"), header(request, "authorization"))
    if value.startswith(tokens.PREFIX):
        signer: tokens.Signer | None = request.app.state.tokens
        if signer is None:
            raise Unauthorized("client tokens are not enabled on this server (CLIENT_TOKENS)")
        token = signer.verify(value)
        return Credential(token.key_digest, token)
    if not SECRET_RE.fullmatch(value):
        raise Unauthorized("malformed API key")
    return Credential(digest(value))


async def admit(endpoint: Endpoint, call: Call) -> None:
    """Authenticate and rate limit (one round trip; 401, 429), then authorize (403)."""
    request = call.request
    assert call.credential is not None
    found, quota, allowed_now = await request.app.state.gate.admit(call.credential.digest, client_address(request))
    call.key = call.credential.limit(found)
    call.response_headers = quota.headers()
    call.key_id = call.key.id
    if not allowed_now:
        raise RateLimited(retry_after(quota.next_token_ms))
    check(call.key, endpoint, request)


async def read(endpoint: Endpoint, call: Call) -> None:
    """Path keys, then the body and its headers (400, 413, 415): no Redis."""
    request = call.request
    if endpoint.path_keys:
        check_path_keys(request.path_params["agent_key"], request.path_params.get("session_key"))
    if endpoint.body is None:
        return
    if not header(request, "content-type") and bodiless(request):
        raw, media = b"", ""
        call.body = models.empty_body(endpoint.body)  # an optional body left out: its defaults (else 400)
    else:
        raw, media = await read_body(request, request.app.state.settings.max_body_bytes, endpoint.accepted)
        call.body = models.parse_body(endpoint.body, raw)
    call.merge = media == MERGE_PATCH_TYPE
    if endpoint.conditional:
        call.if_match = parse_if_match(header(request, "if-match"))
    if endpoint.idempotent and call.key is not None:
        call.idem = idempotency(request, call.key, raw, media, call.if_match)


async def read_then_admit_in_the_write(endpoint: Endpoint, call: Call, known: ApiKey) -> None:
    """A key this process admitted before: the write script runs the gate (one round trip). The
    request is read first, which needs no Redis; if it is bad, the gate still runs first so that its
    401 / 429 / 403 win over the 400, as in the usual order. Role and scope are checked from the key's
    record, which never changes (revocation is the gate's to check)."""
    request = call.request
    call.key = known
    try:
        await read(endpoint, call)
    except ServiceError:
        await admit(endpoint, call)
        raise
    if call.merge:  # a merge patch reads the session before it writes: admit it first
        await admit(endpoint, call)
        return
    call.key_id = known.id

    def on_quota(quota: Quota) -> None:
        call.response_headers = quota.headers()

    assert call.credential is not None
    call.admission = request.app.state.gate.admission(call.credential.digest, client_address(request), on_quota)


def answer(endpoint: Endpoint, call: Call, status: int, payload: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A handler's outcome as an answer: status, headers, body (JSON; none for a 204)."""
    if payload is None:
        return status, [], b""
    body = orjson.dumps(payload)
    headers = [(b"content-type", JSON_BYTES), (b"content-length", str(len(body)).encode())]
    if endpoint.etag:
        headers.append((b"etag", f'"{payload["version"]}"'.encode()))
    if call.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return status, headers, body


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check(key: ApiKey, endpoint: Endpoint, request: Request) -> None:
    """Authorize (403): the key's role and scope (and a client token's) for this endpoint and path."""
    assert endpoint.role is not None
    params = request.path_params
    authorize(
        key, endpoint.role, params.get("agent_key"), endpoint.any_agent, params.get("session_key"), endpoint.tokens
    )


def allowed(key: ApiKey, endpoint: Endpoint, request: Request) -> bool:
    try:
        check(key, endpoint, request)
    except Forbidden:
        return False
    return True
