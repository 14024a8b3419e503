"""Schedule monitoring: the past-due check at startup and the status the host stores and passes on."""

from __future__ import annotations

from datetime import datetime, timedelta

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter

from emulator.functions.triggers.schedules import create_schedule
from emulator.functions.triggers.timer import ScheduleStatus, StorageScheduleMonitor, timer_info_json

DAILY = create_schedule("0 30 2 * * *")


class MemoryMonitor(StorageScheduleMonitor):
    def __init__(self) -> None:
        self.updates: list[ScheduleStatus] = []

    async def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        self.updates.append(ScheduleStatus(status.last, status.next, status.last_updated))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute).astimezone()


async def test_a_first_start_records_the_next_occurrence_and_is_not_past_due() -> None:
    monitor = MemoryMonitor()
    now = local(2024, 5, 1, 12)
    assert await monitor.check_past_due("t", now, DAILY, None) == timedelta(0)
    (written,) = monitor.updates
    assert (written.last, written.next, written.last_updated) == (None, local(2024, 5, 2, 2, 30), now)


async def test_a_missed_occurrence_is_past_due() -> None:
    monitor = MemoryMonitor()
    last = local(2024, 4, 28, 2, 30)
    status = ScheduleStatus(last, local(2024, 4, 29, 2, 30), last)
    now = local(2024, 5, 1, 12)
    assert await monitor.check_past_due("t", now, DAILY, status) == now - local(2024, 4, 29, 2, 30)
    assert monitor.updates == []


async def test_a_changed_schedule_is_not_reported_as_past_due() -> None:
    monitor = MemoryMonitor()
    last = local(2024, 4, 28, 2, 30)
    hourly_status = ScheduleStatus(last, local(2024, 4, 28, 3, 30), last)  # written by an hourly schedule
    now = local(2024, 5, 1, 12)
    assert await monitor.check_past_due("t", now, DAILY, hourly_status) == timedelta(0)
    (written,) = monitor.updates
    assert (written.last, written.next, written.last_updated) == (None, local(2024, 5, 2, 2, 30), now)


def test_status_json_round_trips_and_unset_dates_are_min_value() -> None:
    status = ScheduleStatus(None, local(2024, 5, 2, 2, 30), local(2024, 5, 1, 12))
    data = status.to_json()
    assert data["Last"].startswith("0001-01-01T00:00:00")
    assert ScheduleStatus.from_json(data) == status


def test_the_timer_request_the_function_receives() -> None:
    status = ScheduleStatus(local(2024, 5, 1, 2, 30), local(2024, 5, 2, 2, 30), local(2024, 5, 1, 2, 30))
    request = TimerRequestConverter.decode(
        meta.Datum(timer_info_json(status, True), "json"), trigger_metadata={}
    )
    assert request.past_due is True
    assert request.schedule == {"AdjustForDST": True}
    assert set(request.schedule_status) == {"Last", "Next", "LastUpdated"}
    unmonitored = TimerRequestConverter.decode(
        meta.Datum(timer_info_json(None, False), "json"), trigger_metadata={}
    )
    assert unmonitored.past_due is False and unmonitored.schedule_status == {}
