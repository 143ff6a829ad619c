"""Prompt and fallback templates: Jinja files under explainer/templates/, sandboxed, StrictUndefined.

Each template file sets `version`; a justification carries "name@version". The chat messages
are laid out for vLLM's prefix cache: system (static) -> user (history, then item) -> an
assistant prefill. The items of one request differ only after the history.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from explainer.facts import ItemFacts, clean_text

TEMPLATE_DIR = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                                       autoescape=False, keep_trailing_newline=False)
    env.filters["clean"] = clean_text
    return env


@dataclass(frozen=True)
class Prompt:
    messages: tuple[dict, ...]       # system, user, assistant prefill (continue_final_message)
    prefill: str                     # the assistant's opening words; the returned text starts with it
    instructions: str                # the static system text (the verifier's prompt-echo check)


class PromptTemplate:
    """One prompt template file, `<name>.j2`, exposing macros system / history_block / item_block / prefill."""

    def __init__(self, name: str):
        self.name = name
        self._module = environment().get_template(f"{name}.j2").module
        self.version = str(self._module.version)
        self.id = f"{name}@{self.version}"

    def prefix_messages(self, history_names: Sequence[str | tuple[str, str]]) -> tuple[dict, dict]:
        """history_names: short names, or (what the shopper did, short name) pairs ("rated", "Titanic")."""
        system = str(self._module.system()).strip()
        entries = [h if isinstance(h, tuple) else ("", h) for h in history_names]
        history = [{"did": did, "name": clean_text(name)} for did, name in entries]
        return ({"role": "system", "content": system},
                {"role": "user", "content": str(self._module.history_block(history))})

    def render(self, history_names: Sequence[str | tuple[str, str]], facts: ItemFacts, use_prefill: bool = True,
               item_first: bool = False) -> Prompt:
        """item_first=True puts the item before the history (the bench's no-shared-prefix layout)."""
        system, hist = self.prefix_messages(history_names)
        item = str(self._module.item_block(facts))
        user = f"{item}\n\n{hist['content']}" if item_first else f"{hist['content']}\n{item}"
        prefill = str(self._module.prefill(facts)).strip() if use_prefill else ""
        messages = [system, {"role": "user", "content": user}]
        if prefill:
            messages.append({"role": "assistant", "content": prefill})
        return Prompt(tuple(messages), prefill, system["content"])


class FallbackTemplate:
    """The deterministic justification, `fallback.j2`."""

    def __init__(self, name: str = "fallback"):
        self._module = environment().get_template(f"{name}.j2").module
        self.version = str(self._module.version)
        self.id = f"{name}@{self.version}"

    def render(self, facts: ItemFacts) -> str:
        return " ".join(str(self._module.render(facts)).split())
