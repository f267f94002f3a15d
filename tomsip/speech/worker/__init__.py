"""`tomsip speech-worker`: the offline models behind the OpenAI-compatible audio API, so speech scales
apart from SIP nodes (more boxes, a GPU box) and tomsip nodes can use any server of that API."""
