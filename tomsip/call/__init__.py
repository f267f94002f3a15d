"""The conversation core: a pure call FSM, its asyncio driver, dialplan routing."""
