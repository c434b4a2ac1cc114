"""``fetch.slots.Slots``: the fetcher's request slots keep the semaphore's promises."""

from __future__ import annotations

import asyncio

from totask_manifest._fetch.slots import Slots


def test_slots_bound_holders_and_pass_in_arrival_order():
    async def main() -> list[str]:
        slots = Slots(2)
        order: list[str] = []
        held = 0
        most = 0

        async def user(name: str) -> None:
            nonlocal held, most
            if not slots.take():
                await slots.wait()
            held += 1
            most = max(most, held)
            order.append(name)
            await asyncio.sleep(0.01)
            held -= 1
            slots.give()

        await asyncio.gather(*(user(str(i)) for i in range(6)))
        assert most == 2
        return order

    assert asyncio.run(main()) == [str(i) for i in range(6)]


def test_a_waiter_cancelled_after_a_slot_was_handed_to_it_gives_it_back():
    async def main() -> None:
        slots = Slots(1)
        assert slots.take()
        first = asyncio.ensure_future(slots.wait())
        second = asyncio.ensure_future(slots.wait())
        await asyncio.sleep(0)
        slots.give()  # handed to ``first``, which has not run yet
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)  # the slot went on to the next waiter
        assert not slots.take()
        slots.give()
        assert slots.take()  # and back to free once given

    asyncio.run(main())


def test_a_cancelled_waiter_is_skipped():
    async def main() -> None:
        slots = Slots(1)
        assert slots.take()
        gone = asyncio.ensure_future(slots.wait())
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        slots.give()
        assert slots.take()  # not handed to the cancelled waiter

    asyncio.run(main())
