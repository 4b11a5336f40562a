"""Argument completion (`completion/complete`): the filters and periods, for the prompt and the template.

A host asks as the user types an argument of the `analytics_briefing` prompt or of the resource template
`analytics://dashboard/{filter}/{period}`; the answer is every accepted value that starts with what was
typed (case does not matter), in the order the tool documents them. A prompt, template or argument the
server does not have gets no suggestions rather than an error: completion is a typing aid, and a host
asking about something else is not helped by a failure (the conformance suite's `completion-complete`
asks about a prompt of its own test server and expects exactly this, a well-formed empty answer).
The values are the public vocabulary of the tool, the same for every caller, so no credential is read.
"""

from __future__ import annotations

from typing import Final

from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from cymetica_mcp.models import Filter, Period

CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "filter": tuple(f.value for f in Filter),
    "period": tuple(p.value for p in Period),
}
"""Each completable argument and its accepted values, in documentation order."""


class Completer:
    """The completion handler of a server whose prompt and resource template take `filter` and `period`."""

    def __init__(self, prompt_name: str, uri_template: str) -> None:
        self.prompt_name = prompt_name
        self.uri_template = uri_template

    async def __call__(
        self,
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        """The accepted values of `argument` that start with what was typed; none for anything else."""
        ours = (
            ref.name == self.prompt_name if isinstance(ref, PromptReference) else ref.uri == self.uri_template
        )
        typed = argument.value.lower()
        values = [v for v in CHOICES.get(argument.name, ()) if v.startswith(typed)] if ours else []
        return Completion(values=values, total=len(values), has_more=False)
