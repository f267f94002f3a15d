"""Browser transports: the WebSocket audio stream and the WebRTC softphone, both AudioPorts."""
