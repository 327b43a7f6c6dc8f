"""Request and response bodies. Requests are built per app so the limits in the schema (and in
/openapi.json) are the configured ones. Every text has a length limit and every list a size
limit; unknown fields are refused (except in the OpenRLHF body, which other tools extend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from rewardforge.serving.settings import ServeSettings


@dataclass
class RequestModels:
    ChatMessage: type[BaseModel]
    ScoreItem: type[BaseModel]
    ScoreRequest: type[BaseModel]
    CompareRequest: type[BaseModel]
    RewardRequest: type[BaseModel]


# Tags of "text or list" unions; they appear in error locations and are dropped from messages.
UNION_TAGS = ("text", "list")


def _text_or_list(text_type: Any, list_type: Any, what: str = "a list of chat messages") -> Any:
    """A string or a list, told apart by type, so an error names only the branch that applies
    (a plain union would report "not a valid string" for a bad message list too)."""

    def kind(value: Any) -> str | None:
        return "text" if isinstance(value, str) else "list" if isinstance(value, list) else None

    return Annotated[
        Annotated[text_type, Tag("text")] | Annotated[list_type, Tag("list")],
        Discriminator(
            kind,
            custom_error_type="text_or_list",
            custom_error_message=f"expected a string or {what}",
        ),
    ]


def _check_texts(value: Any, limit: int, where: str) -> None:
    """Every text inside `value` (content parts, tool calls and definitions) within the limit
    plain texts have: a 3 MB tool description was scored."""
    if isinstance(value, str):
        if len(value) > limit:
            raise ValueError(
                f"{where}: a text of {len(value)} characters; at most {limit} (--max-text-chars)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) > limit:  # a key is read too (a tool's parameter names)
                raise ValueError(
                    f"{where}: a key of {len(key)} characters; at most {limit} (--max-text-chars)"
                )
            _check_texts(item, limit, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_texts(item, limit, f"{where}[{i}]")


def _tool_definitions(limit: int):
    def check(value: Any) -> Any:
        """Tools are read as training reads a `tools` column (RowError is a ValueError: 422)."""
        from rewardforge.data.context import tool_specs

        _check_texts(value, limit, "tools")
        tool_specs(value)
        return value

    return check


_STANDARD_KEYS = {"content", "tool_calls", "function_call"}


def _one_message_as_list(value: Any) -> Any:
    """Messages in any form training reads (ShareGPT's from/value, OpenAssistant's `text`,
    Cohere's `message`, Gemini's `parts`, a dict of lists, one message object for a list of one)
    as role/content turns. What training refuses is refused in its words (`field 'message[0].from':
    unknown chat role 'alien'`), under the place in the body the answer names."""
    if not isinstance(value, dict | list) or not value:
        return value
    turns = [value] if isinstance(value, dict) else value
    if all(
        isinstance(t, dict) and isinstance(t.get("role"), str) and _STANDARD_KEYS & t.keys() for t in turns
    ):
        return turns  # checked as they are: errors name their parts
    from rewardforge.data.errors import RowError
    from rewardforge.data.values import messages

    try:
        return messages(value, "message")
    except RowError as exc:  # pydantic's own words named the forms it does not know ("from: Extra inputs")
        raise ValueError(str(exc)) from None


def _reply_text(value: str) -> str:
    """A response given as text, checked as training checks one, except that it may be empty:
    a policy's completion can be, and the RLHF reward must score it."""
    _refuse_bad_response([{"role": "assistant", "content": value}])
    return value


def _reply_messages(value: list[Any]) -> list[Any]:
    """A response given as messages must end with the assistant's reply (which may be empty)."""
    from rewardforge.data.values import messages

    _refuse_bad_response(messages([m.model_dump(exclude_none=True) for m in value], "response"))
    return value


def _refuse_bad_response(messages: list[dict[str, str]]) -> None:
    from rewardforge.data.values import response_problem

    problem = response_problem(messages, allow_empty=True)
    if problem:
        raise ValueError(problem)


def build_request_models(settings: ServeSettings) -> RequestModels:
    text_len = settings.max_text_chars
    # Lists have no maxItems here on purpose: the body-size limit bounds them, and the handler
    # answers a list over max_items with 413 (too large), as documented, not with 422.
    many = f"At most {settings.max_items} (more is answered 413)."

    class ChatMessage(BaseModel):
        """A chat turn, read as training reads it (`rewardforge.data.values.messages`): roles
        system/user/assistant/tool (also developer, function; any case); an assistant turn may
        make tool calls (OpenAI's nested form, the flat {name, arguments} form or the older
        `function_call`), and then its content may be left out. Other keys are read as training
        reads them: OpenAI's `refusal` is the text when content is null, reasoning
        (`reasoning_content`, `thinking`) is not scored, the rest (`annotations`) is ignored."""

        model_config = ConfigDict(extra="allow")
        role: Annotated[str, Field(max_length=32, examples=["user", "assistant", "system", "tool"])]
        content: (
            _text_or_list(
                Annotated[str, Field(max_length=text_len)], list[dict[str, Any]], "a list of content parts"
            )
            | None
        ) = None
        tool_calls: Annotated[list[dict[str, Any]], Field(max_length=settings.max_messages)] | None = None
        function_call: dict[str, Any] | None = None
        name: Annotated[str, Field(max_length=text_len)] | None = None
        tool_call_id: Annotated[str, Field(max_length=text_len)] | None = None

        @model_validator(mode="after")
        def _as_training_reads_it(self) -> ChatMessage:
            from rewardforge.data.errors import RowError
            from rewardforge.data.values import messages

            # every text of the message, its other keys' too: `refusal`, `text` or `parts` may be
            # what is scored, and no key may carry more than a text may
            turn = self.model_dump(exclude_none=True)
            _check_texts(turn, text_len, "message")
            try:
                messages([turn], "message")
            except RowError as exc:  # 422, at the message's place in the body ("prompt[0]")
                field = (exc.field or "").removeprefix("message[0]").lstrip(".")
                raise ValueError(f"field '{field}': {exc.reason}" if field else exc.reason) from None
            return self

    Text = Annotated[str, Field(max_length=text_len)]
    Messages = Annotated[list[ChatMessage], Field(min_length=1, max_length=settings.max_messages)]
    PromptMessages = Annotated[list[ChatMessage], Field(max_length=settings.max_messages)]
    Prompt = Annotated[
        _text_or_list(Text, PromptMessages) | None,
        BeforeValidator(_one_message_as_list),
        Field(description="A user message as text, or a list of chat messages (or one); optional."),
    ]
    # what training refuses (messages that do not end with the assistant's reply) is refused here
    # too, in the same words: 422 naming the field; an empty reply is scored (see _reply_text)
    Response = Annotated[
        _text_or_list(
            Annotated[Text, AfterValidator(_reply_text)], Annotated[Messages, AfterValidator(_reply_messages)]
        ),
        BeforeValidator(_one_message_as_list),
        Field(
            description="The assistant reply as text, or a list of chat messages ending with the "
            "assistant's reply (or that one message); it may be empty (a policy's completion can be)."
        ),
    ]

    Tools = Annotated[
        Any,
        AfterValidator(_tool_definitions(text_len)),
        Field(
            default=None,
            description="Tool definitions the assistant may call, in any form a `tools` column takes "
            "in training (a list of objects or of their JSON texts, one object, or JSON text); they "
            "join the system turn.",
        ),
    ]

    class ScoreItem(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: Prompt = None
        response: Response
        tools: Tools = None

    class ScoreRequest(BaseModel):
        """Either one item (`prompt` + `response`) or a list of `items`."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"prompt": "What is 2+2?", "response": "4"},
                    {"items": [{"prompt": "Hi", "response": "Hello!"}, {"response": "Bye."}]},
                ]
            },
        )
        prompt: Prompt = None
        response: Response | None = None
        tools: Tools = None
        items: Annotated[list[ScoreItem], Field(description=many)] | None = None

        @model_validator(mode="after")
        def _one_form(self) -> ScoreRequest:
            if self.items is None and self.response is None:
                raise ValueError("give 'response' (with an optional 'prompt') or a list of 'items'")
            if self.items is not None and any(
                v is not None for v in (self.response, self.prompt, self.tools)
            ):
                raise ValueError("give either 'prompt'/'response'/'tools' or 'items', not both")
            if self.items is not None and not self.items:
                raise ValueError("items must not be empty")
            return self

    class CompareRequest(BaseModel):
        """Two or more responses to one prompt."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"prompt": "What is 2+2?", "responses": ["4", "5"]}],
            },
        )
        prompt: Prompt = None
        responses: Annotated[list[Response], Field(min_length=2, description=many)]
        tools: Tools = None

    class RewardRequest(BaseModel):
        """OpenRLHF remote reward model body: `query` holds full formatted conversations."""

        model_config = ConfigDict(
            extra="allow",
            json_schema_extra={"examples": [{"query": ["<|im_start|>user\nHi<|im_end|>\n..."]}]},
        )
        query: Annotated[_text_or_list(Text, list[Text], "a list of strings"), Field(description=many)]
        prompts: Any = None
        labels: Any = None

    return RequestModels(ChatMessage, ScoreItem, ScoreRequest, CompareRequest, RewardRequest)


class ScoreResponse(BaseModel):
    model: str
    score: float | None = Field(None, description="The reward, for a single-item request.")
    scores: list[float] | None = Field(None, description="One reward per item, for an `items` request.")


class CompareResponse(BaseModel):
    model: str
    scores: list[float]
    probability: float = Field(
        description="P(responses[0] preferred over responses[1]) = sigmoid(beta * (score0 - score1)), "
        "beta the model's training beta (1 by default)."
    )
    pairwise: list[list[float]] = Field(description="pairwise[i][j] = P(response i preferred over j).")
    ranking: list[int] = Field(description="Response indices, best first.")


class RewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


class HealthResponse(BaseModel):
    status: str
    model: str
    auth_required: bool
    queue_depth: int
    in_flight: int
    max_queue: int
    max_batch_size: int
    max_wait_ms: float
    max_items: int


class ErrorResponse(BaseModel):
    error: str
    detail: Any = None
