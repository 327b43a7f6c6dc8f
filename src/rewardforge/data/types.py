"""The one internal shape every preference record is normalised to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user" | "assistant" | "system" | "tool", "content": str}

CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass
class PreferencePair:
    """A prompt (chat messages, possibly empty) and two completions, `chosen` preferred.

    `chosen`/`rejected` are message lists too (almost always one assistant message), so a
    multi-turn completion needs no special case. `margin` is an optional per-pair offset in
    the Bradley-Terry loss; `source` says where the row came from, for error messages.
    """

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    margin: float | None = None
    id: str | None = None
    category: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen_text(self) -> str:
        return "\n".join(m["content"] for m in self.chosen)

    @property
    def rejected_text(self) -> str:
        return "\n".join(m["content"] for m in self.rejected)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        for key in ("margin", "id", "category"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d
