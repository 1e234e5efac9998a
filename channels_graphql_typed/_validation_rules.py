"""Validation rules that bound what one document may cost, and the rules Strawberry adds.

``max_query_depth`` (:func:`max_depth_rule`) and ``max_query_aliases``
(:func:`max_aliases_rule`) refuse documents whose execution could multiply work;
``max_query_tokens`` is enforced by the parser itself and :func:`count_tokens` measures a
parsed document for the caches' budgets.
"""

from __future__ import annotations

from typing import Any, Final

from graphql import (
    SKIP,
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

DEFAULT_MAX_QUERY_TOKENS: Final = 10_000


DEFAULT_MAX_QUERY_DEPTH: Final = 32


DEFAULT_MAX_QUERY_ALIASES: Final = 100


def max_depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """A validation rule rejecting operations nested deeper than ``max_depth`` fields
    (fragments are followed; each fragment's depth is computed once)."""

    class MaxQueryDepthRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragment_depths: dict[str, int] = {}

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> Any:
            if self._depth(node.selection_set, set(), max_depth + 1) > max_depth:
                name = f"'{node.name.value}' " if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"Operation {name}is nested more than {max_depth} levels deep.", node
                    )
                )
            return SKIP

        def _depth(
            self, selection_set: SelectionSetNode | None, visiting: set[str], remaining: int
        ) -> int:
            # Never looks more than ``remaining`` levels down: a hostile document costs
            # at most max_depth + 1 levels of walking, not its real depth.
            if selection_set is None or remaining <= 0:
                return 0
            deepest = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    depth = 1 + self._depth(selection.selection_set, visiting, remaining - 1)
                elif isinstance(selection, InlineFragmentNode):
                    depth = self._depth(selection.selection_set, visiting, remaining)
                elif isinstance(selection, FragmentSpreadNode):
                    depth = min(self._fragment_depth(selection.name.value, visiting), remaining)
                else:
                    depth = 0
                deepest = max(deepest, depth)
                if deepest >= remaining:
                    break
            return deepest

        def _fragment_depth(self, name: str, visiting: set[str]) -> int:
            if name in self._fragment_depths:
                return self._fragment_depths[name]
            fragment = self.context.get_fragment(name)
            if fragment is None or name in visiting:
                return 0  # unknown or cyclic fragments are other rules' errors
            depth = self._depth(fragment.selection_set, visiting | {name}, max_depth + 1)
            self._fragment_depths[name] = depth
            return depth

    return MaxQueryDepthRule


def max_aliases_rule(max_aliases: int) -> type[ASTValidationRule]:
    """A validation rule rejecting documents with more than ``max_aliases`` aliased
    fields: aliases are how one small document asks for the same costly field many
    times."""

    class MaxQueryAliasesRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is None:
                return
            self._count += 1
            if self._count == max_aliases + 1:
                self.report_error(
                    GraphQLError(f"The document has more than {max_aliases} aliases.", node)
                )

    return MaxQueryAliasesRule


def count_tokens(document: DocumentNode) -> int:
    """How many lexical tokens the parser read for ``document`` (what its AST costs)."""
    count = 0
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        count += 1
        token = token.next
    return count


STRAWBERRY_RULES: Final[tuple[type[ASTValidationRule], ...]] = (
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)
"""The rules Strawberry adds to every validation (``strawberry.schema.validate_document``)."""
