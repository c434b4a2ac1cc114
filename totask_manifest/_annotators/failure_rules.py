"""Kept so existing imports work: the failure rules live on the ground floor, ``totask_manifest._failure_rules``
(jobs, analytics and the outcome types read them without importing annotators)."""

from .._failure_rules import (
    CONFIGURATION_RULES,
    FAIL_FAST_LINES,
    UNCLASSIFIED,
    SystematicFailure,
    checked_rule,
    rule_of,
)

__all__ = ["CONFIGURATION_RULES", "FAIL_FAST_LINES", "UNCLASSIFIED", "SystematicFailure", "checked_rule", "rule_of"]
