"""One job at a time per device, taken in turns by caller (round robin), first come first
served within a caller: a client that sends a hundred jobs does not make another wait
behind all of them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairQueue:
    """``async with queue.turn(caller):`` runs one body at a time, in fair order."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()
        self._busy = False

    @property
    def waiting(self) -> int:
        return sum(len(line) for line in self._waiting.values())

    @asynccontextmanager
    async def turn(self, caller: str) -> AsyncIterator[None]:
        """Wait for this caller's turn, hold the device for the body, pass it on."""
        if self._busy or self._waiting:
            ticket = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(caller, deque()).append(ticket)
            try:
                await ticket
            except asyncio.CancelledError:
                if not self._withdraw(caller, ticket):  # the turn came as we were cancelled
                    self._pass_on()
                raise
        self._busy = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        """Give the device to the next caller in line (rotating callers), or free it."""
        while self._waiting:
            caller, line = next(iter(self._waiting.items()))
            ticket = line.popleft()
            del self._waiting[caller]
            if line:
                self._waiting[caller] = line  # back of the rotation
            if not ticket.done():
                ticket.set_result(None)
                return
        self._busy = False

    def _withdraw(self, caller: str, ticket: asyncio.Future) -> bool:
        """Remove a ticket still in line; False when it was already handed the turn."""
        line = self._waiting.get(caller)
        if line is None or ticket not in line:
            return False
        line.remove(ticket)
        if not line:
            del self._waiting[caller]
        return True
