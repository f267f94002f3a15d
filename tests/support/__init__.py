"""Test peers and analysis tools (RTP peer, tone analysis, SIPp runner, server fixture)."""
