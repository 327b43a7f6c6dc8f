"""The HTTP app: `create_app(scorer, settings)` builds it around a RewardModel or any scorer.

Endpoints: POST /v1/score, POST /v1/compare, POST /get_reward (OpenRLHF remote reward model),
GET /health, GET /metrics (Prometheus), GET / (a page to try the model), /openapi.json, /docs.

Path of a request: guard middleware (API key -> 401; body size -> 413; metrics) -> pydantic
schema (-> 422) -> item count (-> 413) -> formatting and tokenization on one preparation thread
(-> 422 if the model cannot take an item) -> bounded queue (-> 503 when full) -> micro-batch
on the one model thread -> response. Nothing reaches the model before every check passed.
"""

import asyncio
import hmac
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardforge.evaluation.metrics import preference_probability
from rewardforge.serving.batcher import MicroBatcher, QueueFullError, StoppingError
from rewardforge.serving.metrics import CONTENT_TYPE, Metrics
from rewardforge.serving.page import render_page
from rewardforge.serving.schemas import (
    UNION_TAGS,
    CompareResponse,
    ErrorResponse,
    HealthResponse,
    RewardResponse,
    ScoreResponse,
    build_request_models,
)
from rewardforge.serving.scorer import as_scorer
from rewardforge.serving.settings import ServeSettings

log = logging.getLogger("rewardforge.serving")

# Paths anyone may read even when an API key is set: the page (it asks for the key), liveness,
# and the API description.
OPEN_PATHS = frozenset({"/", "/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/favicon.ico"})
METRIC_PATHS = frozenset(
    {"/", "/health", "/metrics", "/openapi.json", "/docs", "/v1/score", "/v1/compare", "/get_reward"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UnpreparableItem(ValueError):
    """An item that passed the schema but cannot be formatted or tokenized: `where` is its place
    in the body ("" for the body itself), `reason` what is wrong."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where, self.reason = where, reason


class UnprocessableItem(Exception):
    """A 422 for an item found unusable while being prepared, answered with `detail` too."""

    def __init__(self, message: str, detail: list[dict[str, str]]):
        super().__init__(message)
        self.message, self.detail = message, detail


def _json_error(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None):
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


# ---- the guard: auth, body size, metrics; pure ASGI so it acts before the body is read --------
CLIENT_CLOSED = 499  # nginx's status for a request whose client closed the connection


class GuardMiddleware:
    def __init__(self, app, settings: ServeSettings, metrics: Metrics):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.key = settings.api_key.encode() if settings.api_key else None

    def _authorized(self, scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        label = path if path in METRIC_PATHS else "other"
        started = time.perf_counter()
        status = 500  # unless a response says otherwise: an exception escaped
        self.metrics.in_flight += 1

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.key is not None and path not in OPEN_PATHS and not self._authorized(scope):
                await _json_error(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )(scope, receive, send_and_note)
                return
            if method in BODY_METHODS:
                body = await self._read_body(scope, receive, send_and_note)
                if body is None:
                    if status == 500:  # no answer was sent: the client went away mid-body
                        status = CLIENT_CLOSED
                    return
                if path in JSON_PATHS:
                    media = _media_type(scope)
                    problem = _body_problem(media, body)
                    if problem:
                        await _json_error(422, problem)(scope, receive, send_and_note)
                        return
                    if media != "application/json":  # none, text/json, ...: FastAPI parses only
                        # application/json (and +json); JSON is what these paths take
                        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
                        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
                receive = _replay(body, receive)
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight -= 1
            self.metrics.observe_request(label, method, status, time.perf_counter() - started)

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The whole body, or None after answering 413/400 (or if the client went away)."""
        limit = self.settings.max_body_bytes
        too_big = _json_error(413, f"request body larger than {limit} bytes", headers={"Connection": "close"})
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _json_error(400, "bad Content-Length header")(scope, receive, send)
                    return None
                if declared > limit:
                    await too_big(scope, receive, send)
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_big(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


JSON_PATHS = ("/v1/score", "/v1/compare", "/get_reward")


def _media_type(scope) -> str:
    """The request's Content-Type without parameters, lower case ("" when there is none)."""
    media = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"content-type"), "")
    return media.split(";")[0].strip().lower()


def _body_problem(media: str, body: bytes) -> str | None:
    """What makes a body (sent as `media`) no JSON request, said plainly (FastAPI answers an
    empty body "Field required", a form-encoded one "Input should be a valid dictionary", bad
    UTF-8 with a 400)."""
    if not body.strip():
        return "empty request body: send a JSON object with Content-Type: application/json"
    if media and "json" not in media:
        return f"the body was sent as {media}; send JSON with Content-Type: application/json"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"malformed JSON body (not valid UTF-8 at byte {exc.start})"
    return None


def _unreadable_json(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI's parser gave up on a body that is JSON: it answers these with a bare 400
    ("There was an error parsing the body"), its parsing error kept as the cause."""
    if exc.status_code != 400:
        return None
    if isinstance(exc.__cause__, RecursionError):
        return "malformed JSON body (nested too deeply to read)"
    if isinstance(exc.__cause__, ValueError):  # int() past Python's digit limit
        return "malformed JSON body (a number has too many digits to read)"
    return None


class ClientGone(Exception):
    """The client closed the connection before its scores were ready."""


async def _client_gone(request: Request) -> bool:
    """Whether the client has closed the connection already (no waiting)."""
    try:
        return await request.is_disconnected()
    except Exception:  # noqa: BLE001 - a server without the check: assume the client is there
        return False


async def _unless_gone(future: asyncio.Future, request: Request) -> list[float]:
    """The job's scores; if the client goes away first, the job is cancelled (the batcher skips
    cancelled jobs, so nobody's forward pass is spent on it) and ClientGone is raised."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not future.done():
        future.cancel()
        raise ClientGone
    return future.result()


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    details = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # its loc is ("body", position), not a field
            position = next((p for p in err.get("loc", ()) if isinstance(p, int)), None)
            cause = (err.get("ctx") or {}).get("error")
            at = f"at character {position}" if position is not None else ""
            at = f"{at}: {cause}" if at and cause else at or cause or ""
            details.append({"field": "(body)", "message": "malformed JSON body" + (f" ({at})" if at else "")})
            continue
        loc = [str(p) for p in err.get("loc", ()) if p != "body" and p not in UNION_TAGS]
        where = ""
        for part in loc:
            where += f"[{part}]" if part.isdigit() else (f".{part}" if where else part)
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"field": where or "(body)", "message": message})
    first = details[0] if details else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    where = "" if first["field"] == "(body)" else f"{first['field']}: "
    return f"invalid request: {where}{first['message']}{more}", details


def create_app(scorer: Any, settings: ServeSettings | None = None) -> FastAPI:
    """An ASGI app serving `scorer` (a RewardModel, an object with prepare/prepare_text/run, or
    one with score_batch). Start it with uvicorn; the model thread starts with the app."""
    from rewardforge import __version__

    settings = settings or ServeSettings()
    core = as_scorer(scorer, settings.max_batch_size, settings.share_prefix)
    beta = float(getattr(scorer, "beta", 1.0))  # the loss's beta a RewardModel was trained with
    metrics = Metrics()
    batcher = MicroBatcher(
        core.run,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        metrics=metrics,
    )
    metrics.queue_depth = lambda: batcher.depth
    prep_pool: dict[str, ThreadPoolExecutor] = {}
    admission = {"preparing": 0}  # requests accepted and being prepared (not yet queued)
    models = build_request_models(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # one thread prepares (tokenizers are not safe to share between threads), one runs the model
        prep_pool["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardforge-prepare")
        await batcher.start()
        warm_up = getattr(core, "warm_up", None)
        if callable(warm_up):
            await batcher.call_in_model_thread(warm_up)
        try:
            yield
        finally:
            await batcher.stop(settings.graceful_timeout_s)
            prep_pool["pool"].shutdown(wait=True)

    app = FastAPI(
        title="rewardforge reward model server",
        version=__version__,
        description=(
            "Scores conversations with a Bradley-Terry reward model (higher = better). "
            + (
                "Every endpoint but /, /health and the docs needs 'Authorization: Bearer <key>'."
                if settings.auth_required
                else "No API key is required."
            )
        ),
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics)
    # documents the bearer scheme in /openapi.json; the guard middleware enforces it
    secured = [Depends(HTTPBearer(auto_error=False))] if settings.auth_required else []
    errors = {
        401: {"model": ErrorResponse, "description": "Missing or wrong API key."},
        413: {"model": ErrorResponse, "description": "Body or item count over the limit."},
        422: {"model": ErrorResponse, "description": "Body does not match the schema."},
        503: {"model": ErrorResponse, "description": "Queue full or shutting down; retry later."},
    }

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, details = _describe_validation(exc)
        return _json_error(422, message, details)

    @app.exception_handler(UnprocessableItem)
    async def _unprocessable(request: Request, exc: UnprocessableItem):
        return _json_error(422, exc.message, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        unreadable = _unreadable_json(exc)
        if unreadable is not None:  # a body problem like the others: 422 saying what it is
            return _json_error(422, unreadable)
        return _json_error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def run_scoring(n: int, prepare: Callable[[], list[Any]], request: Request) -> list[float]:
        if n > settings.max_items:
            raise HTTPException(413, f"{n} items in one request; the limit is {settings.max_items}")
        # requests being prepared count against the queue too, so nothing grows without limit
        if not batcher.has_room() or batcher.depth + admission["preparing"] >= settings.max_queue:
            metrics.queue_full += 1
            raise HTTPException(503, "server busy: the queue is full, retry later", {"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        admission["preparing"] += 1
        try:
            try:
                prepared = await loop.run_in_executor(prep_pool["pool"], prepare)
            except UnpreparableItem as exc:  # with `detail`, as a schema error has it
                detail = [{"field": exc.where or "(body)", "message": exc.reason}]
                raise UnprocessableItem(f"invalid request: {exc}", detail) from None
            except asyncio.CancelledError:  # cancelled by a shutdown that ran out of time, as below
                raise HTTPException(503, "the server is shutting down", {"Retry-After": "5"}) from None
            # gone while it waited to be prepared: an idle model would take the job before the
            # watcher below could see that, and spend a forward pass on nobody
            if await _client_gone(request):
                raise HTTPException(CLIENT_CLOSED, "the client closed the connection")
            try:
                future = batcher.submit(prepared)
            except QueueFullError:
                raise HTTPException(
                    503, "server busy: the queue is full, retry later", {"Retry-After": "1"}
                ) from None
            except StoppingError:
                raise HTTPException(503, "the server is shutting down", {"Retry-After": "5"}) from None
        finally:
            admission["preparing"] -= 1
        try:
            scores = await _unless_gone(future, request)
        except ClientGone:
            raise HTTPException(CLIENT_CLOSED, "the client closed the connection") from None
        except (StoppingError, asyncio.CancelledError):
            # CancelledError: uvicorn's graceful shutdown ran out of time and cancels the requests
            # still waiting; they get the documented 503, not its plain-text 500
            raise HTTPException(503, "the server is shutting down", {"Retry-After": "5"}) from None
        except Exception as exc:  # noqa: BLE001 - a scorer failure is the server's fault: 500
            log.error("scoring failed: %s: %s", type(exc).__name__, exc)
            raise HTTPException(500, f"scoring failed: {type(exc).__name__}") from None
        if not all(math.isfinite(s) for s in scores):
            raise HTTPException(500, "the model returned a non-finite score")
        return scores

    def prepare_pairs(pairs: Sequence[tuple[Any, Any, Any]], label: str) -> Callable[[], list[Any]]:
        def prepare() -> list[Any]:
            out = []
            for i, (prompt, response, tools) in enumerate(pairs):
                try:
                    if tools is not None:  # into the system turn, as training put a `tools` column
                        from rewardforge.inference import prompt_and_response

                        prompt, response = prompt_and_response(prompt, response, tools)
                    out.append(core.prepare(prompt, response))
                except Exception as exc:  # noqa: BLE001 - any failure here is about the input
                    raise UnpreparableItem(label.format(i=i), _reason(exc)) from exc
            return out

        return prepare

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        response_model_exclude_none=True,
        dependencies=secured,
        responses=errors,
        summary="Reward of one (prompt, response) or of a list of items",
    )
    async def score(body: models.ScoreRequest, request: Request) -> Any:  # type: ignore[name-defined]
        if body.items is None:
            pairs = [(_plain(body.prompt), _plain(body.response), body.tools)]
            scores = await run_scoring(1, prepare_pairs(pairs, ""), request)
            return {"model": settings.model_name, "score": scores[0]}
        pairs = [(_plain(it.prompt), _plain(it.response), it.tools) for it in body.items]
        scores = await run_scoring(len(pairs), prepare_pairs(pairs, "items[{i}]"), request)
        return {"model": settings.model_name, "scores": scores}

    @app.post(
        "/v1/compare",
        response_model=CompareResponse,
        dependencies=secured,
        responses=errors,
        summary="Rewards of two or more responses to one prompt, and preference probabilities",
    )
    async def compare(body: models.CompareRequest, request: Request) -> Any:  # type: ignore[name-defined]
        prompt = _plain(body.prompt)
        pairs = [(prompt, _plain(r), body.tools) for r in body.responses]
        each = prepare_pairs(pairs, "responses[{i}]")

        def prepare() -> list[Any]:
            group = getattr(core, "prepare_group", None)
            if group is None:
                return each()
            from rewardforge.inference import prompt_and_response

            for i, (p, r, tools) in enumerate(pairs):  # which response is bad, before the group reads them
                try:
                    prompt_and_response(p, r, tools)
                except Exception as exc:  # noqa: BLE001 - any failure here is about the input
                    raise UnpreparableItem(f"responses[{i}]", _reason(exc)) from exc
            try:  # cut together, as RewardModel.compare and eval cut a pair's prompt once
                return group(prompt, [r for _, r, _ in pairs], body.tools)
            except Exception as exc:  # noqa: BLE001 - any failure here is about the input
                raise UnpreparableItem("responses", _reason(exc)) from exc

        scores = await run_scoring(len(pairs), prepare, request)
        pairwise = [
            [preference_probability(a - b, beta) if i != j else 0.5 for j, b in enumerate(scores)]
            for i, a in enumerate(scores)
        ]
        ranking = sorted(range(len(scores)), key=lambda i: -scores[i])
        return {
            "model": settings.model_name,
            "scores": scores,
            "probability": pairwise[0][1],
            "pairwise": pairwise,
            "ranking": ranking,
        }

    @app.post(
        "/get_reward",
        response_model=RewardResponse,
        dependencies=secured,
        responses=errors,
        summary="OpenRLHF remote reward model: rewards of full formatted conversations",
    )
    async def get_reward(body: models.RewardRequest, request: Request) -> Any:  # type: ignore[name-defined]
        texts = [body.query] if isinstance(body.query, str) else list(body.query)

        def prepare() -> list[Any]:
            out = []
            for i, text in enumerate(texts):
                try:
                    out.append(core.prepare_text(text))
                except Exception as exc:  # noqa: BLE001 - any failure here is about the input
                    raise UnpreparableItem(f"query[{i}]", _reason(exc)) from exc
            return out

        scores = await run_scoring(len(texts), prepare, request)
        return {"rewards": scores, "scores": scores, "extra_logs": {"reward": scores}}

    # HEAD too (out of the schema, which would list the one operation twice): load balancers and
    # `curl -I` probe with it (it was 405)
    @app.head("/health", include_in_schema=False)
    @app.get("/health", response_model=HealthResponse, summary="Liveness and settings")
    async def health() -> Any:
        return {
            "status": "ok",
            "model": settings.model_name,
            "auth_required": settings.auth_required,
            "queue_depth": batcher.depth,
            "in_flight": max(metrics.in_flight - 1, 0),  # other requests being handled now
            "max_queue": settings.max_queue,
            "max_batch_size": settings.max_batch_size,
            "max_wait_ms": settings.max_wait_ms,
            "max_items": settings.max_items,
        }

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=secured,
        summary="Prometheus metrics: requests, latency, batch sizes, queue",
    )
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    page = render_page(settings.model_name, settings.auth_required, settings.max_items)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def _plain(value: Any) -> Any:
    """Pydantic message objects -> plain dicts (what RewardModel takes); str/None unchanged."""
    if isinstance(value, list):
        return [m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else m for m in value]
    return value


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return (
        text
        if isinstance(exc, ValueError)
        else f"cannot be formatted for this model ({type(exc).__name__}: {text})"
    )
