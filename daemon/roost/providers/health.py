"""An account's payload health: the fields it cannot read now, and the payloads it skipped.

One `PayloadHealth` per account (held by the `ChangeSink`, see `HomeState.payload_health`).
Providers (or their supervisor) hand it each normalization's `Problems` and each payload
refused by a parse cap. A problem is logged once per (device, field) for the life of the
daemon, not once per payload, and counted each time it appears; while any problem is
present, or the last payload was skipped, the account is degraded and `reason` says why.
"""

from __future__ import annotations

from collections.abc import Collection

import structlog

from roost.providers.readers import Problem, Problems

log = structlog.get_logger(__name__)


class PayloadHealth:
    def __init__(self, account: str) -> None:
        self.account = account
        self.present: dict[str, dict[str, Problem]] = {}  # target → field → problem
        self.problems_total = 0  # problems that appeared (a cleared one may appear again)
        self.rejected_total = 0  # payloads skipped whole (too big, too deep, not JSON…)
        self.last_rejection: str | None = None
        self._logged: set[tuple[str, str]] = set()

    def review(self, problems: Problems, keep: Collection[str] | None = None) -> None:
        """Take one normalization's findings. The targets it read are judged afresh; with
        `keep` (the ids still in the home) problems of targets gone are forgotten."""
        self.last_rejection = None
        before = {t: self.present.pop(t) for t in problems.read if t in self.present}
        if keep is not None:
            for gone in [t for t in self.present if t not in keep]:
                del self.present[gone]
        for problem in problems.found:
            fields = self.present.setdefault(problem.target, {})
            if problem.field in fields:
                continue
            fields[problem.field] = problem
            if problem.field not in before.get(problem.target, {}):
                self.problems_total += 1
                self._log_once(problem)

    def reject(self, reason: str) -> None:
        """A payload was skipped whole by a parse cap or as unreadable."""
        self.rejected_total += 1
        self.last_rejection = reason
        log.warning("payload skipped", account=self.account, reason=reason)

    @property
    def problem_count(self) -> int:
        return sum(len(fields) for fields in self.present.values())

    @property
    def reason(self) -> str | None:
        """Why the account is degraded, or None when it is not."""
        if self.last_rejection is not None:
            return f"payload skipped: {self.last_rejection}"
        count = self.problem_count
        if not count:
            return None
        first = next(iter(next(iter(self.present.values())).values()))
        more = f" (+{count - 1} more)" if count > 1 else ""
        return f"unreadable field {first.describe()}{more}"

    def _log_once(self, problem: Problem) -> None:
        key = (problem.target, problem.field)
        if key in self._logged:
            return
        self._logged.add(key)
        log.warning(
            "unreadable field: the attribute is unknown",
            account=self.account,
            target=problem.target,
            field=problem.field,
            problem=problem.kind,
            value=problem.value,
        )
