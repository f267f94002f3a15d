"""Pure audio building blocks: no sockets, no clocks, no SIP."""
