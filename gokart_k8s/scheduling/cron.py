"""Standard 5-field cron schedules, parsed as the CronJob controller parses them.

The controller uses robfig/cron's standard parser
(https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#schedule-syntax): fields
minute, hour, day of month, month, day of week; ``*``, ``?``, ``a-b``, ``*/n``, ``a-b/n``, ``a/n``
(from ``a`` to the maximum), lists, month and weekday names, ``7`` as Sunday, and the macros
``@yearly``/``@annually``/``@monthly``/``@weekly``/``@daily``/``@midnight``/``@hourly``.
When both day fields are restricted a day matches either of them, as in Vixie cron.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(ValueError):
    """A schedule the CronJob API would refuse."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def matches(self, t: datetime) -> bool:
        return t.minute in self.minutes and t.hour in self.hours and t.month in self.months and self._day_matches(t)

    def next_after(self, t: datetime) -> datetime | None:
        """The first matching minute strictly after ``t`` (in ``t``'s time zone), within 5 years.

        Walks month → day → hour → minute like robfig/cron, so sparse schedules stay cheap.
        """
        tz = t.tzinfo
        cur = t.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        limit = cur.year + 5
        while cur.year <= limit:
            if cur.month not in self.months:
                year, month = (cur.year + 1, 1) if cur.month == 12 else (cur.year, cur.month + 1)
                cur = cur.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(cur):
                cur = (cur + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if cur.hour not in self.hours:
                cur = (cur + timedelta(hours=1)).replace(minute=0)
                continue
            if cur.minute not in self.minutes:
                cur += timedelta(minutes=1)
                continue
            return cur.replace(tzinfo=tz)
        return None


def _value(text: str, index: int) -> int:
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}")
    return int(text)


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    lo, hi = _BOUNDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        range_part, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step {step_text!r} in {part!r}")
            step = int(step_text)
        if range_part in ("*", "?"):
            start, end = lo, hi
            star = step == 1
        elif "-" in range_part:
            a, _, b = range_part.partition("-")
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(range_part, index)
            end = hi if step_text else start
        if index == 4 and end == 7:
            end = 6 if start <= 6 else 0
            values.add(0)
        if index == 4 and start == 7:
            start = 0
        if start < lo or end > hi or start > end:
            raise CronError(f"{part!r} is out of range [{lo}-{hi}]")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse(schedule: str) -> Schedule:
    """Parse a CronJob ``spec.schedule``; raises :class:`CronError` with the reason."""
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("TZ or CRON_TZ in the schedule is not supported; set spec.timeZone instead")
    text = _MACROS.get(text, text)
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {schedule}")
    minutes, _ = _field(fields[0], 0)
    hours, _ = _field(fields[1], 1)
    days, days_star = _field(fields[2], 2)
    months, _ = _field(fields[3], 3)
    weekdays, weekdays_star = _field(fields[4], 4)
    return Schedule(minutes, hours, days, months, weekdays, days_star, weekdays_star)
