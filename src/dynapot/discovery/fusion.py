"""Which tool's OS answer a host gets when the tools disagree.

The default rule, in words: nmap's OS answer wins when its accuracy is at least
`nmap_threshold` (85); otherwise the most confident of the other tools wins (p0f, whose
accuracy is 90/70/50 for exact/fuzzy/generic matches); a tie goes to the tool that comes
first in `tool_order`, then to the newest guess. A tool that did not name an OS (no
guess, or accuracy 0) offers nothing: an unknown class stays unknown rather than guessed,
and when no tool named an OS the answer is None.

Why nmap first: its guess comes from a dozen active probes, p0f's from one packet. Why
not always nmap: a weak nmap match (a host behind a firewall, few open ports) is often
worse than a clean p0f exact match. When nmap is below its threshold but still the most
confident tool, it still wins: the threshold only decides whether nmap wins *outright*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["DEFAULT_RULE", "FusionPolicy", "FusionRule", "ToolGuess", "fuse"]

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ToolGuess:
    """One tool's OS answer for a host: `confidence` in percent, `ref` the caller's own row."""

    tool: str
    confidence: int
    seen_at: datetime | None = None
    os: str | None = None  # a name for humans and tests; the rule does not read it
    ref: object = None


class FusionPolicy(Protocol):
    """The configurable parts of the rule; `dynapot.config.FusionSettings` is one."""

    @property
    def nmap_threshold(self) -> int: ...
    @property
    def tool_order(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class FusionRule:
    """The rule's defaults (config: ``[discovery.fusion]`` overrides them)."""

    nmap_threshold: int = 85
    tool_order: tuple[str, ...] = ("nmap", "p0f", "passive")


DEFAULT_RULE = FusionRule()


def _aware(when: datetime | None) -> datetime:
    # SQLite hands back naive datetimes; compare everything as UTC.
    if when is None:
        return _EPOCH
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def fuse(guesses: Sequence[ToolGuess], rule: FusionPolicy = DEFAULT_RULE) -> ToolGuess | None:
    """The guess the host's OS should come from, or None when no tool named one."""
    known = [g for g in guesses if g.confidence > 0]
    if not known:
        return None
    rank = {tool: i for i, tool in enumerate(rule.tool_order)}

    def priority(g: ToolGuess) -> tuple[int, int, datetime]:
        # Higher is better: confidence, then a tool early in tool_order, then the newest.
        return g.confidence, -rank.get(g.tool, len(rank)), _aware(g.seen_at)

    nmap = [g for g in known if g.tool == "nmap" and g.confidence >= rule.nmap_threshold]
    if nmap:
        return max(nmap, key=priority)
    return max(known, key=priority)
